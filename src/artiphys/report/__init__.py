"""artiphys.report"""
