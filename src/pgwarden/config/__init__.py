"""pgwarden.config"""
