"""pgwarden.local"""
