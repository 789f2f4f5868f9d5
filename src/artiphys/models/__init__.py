"""artiphys.models"""
