"""Operations that join storage and analysis: read arrays from an Index, run analysis, store results.

Layering: cli -> api -> indexer, analysis -> errors, config.
"""
