"""pgwarden.dcs"""
