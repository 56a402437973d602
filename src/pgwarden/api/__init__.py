"""pgwarden.api"""
