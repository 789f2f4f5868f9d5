"""artiphys.recording"""
