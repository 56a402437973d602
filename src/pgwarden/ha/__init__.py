"""pgwarden.ha"""
