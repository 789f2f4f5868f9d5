"""artiphys.tuning"""
