"""artiphys.synthesis"""
