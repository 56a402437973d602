"""pgwarden.ha.rules"""
