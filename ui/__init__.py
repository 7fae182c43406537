"""Streamlit helpers shared by the pages (core/ never imports Streamlit; this package does)."""
