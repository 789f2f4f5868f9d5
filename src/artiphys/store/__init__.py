"""artiphys.store"""
