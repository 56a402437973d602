"""pgwarden.agent"""
