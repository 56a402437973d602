"""pgwarden.postgres"""
