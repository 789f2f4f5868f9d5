"""artiphys.stimuli"""
