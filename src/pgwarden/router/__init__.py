"""pgwarden.router"""
