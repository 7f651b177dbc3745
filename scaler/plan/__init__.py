"""Pure decisions: functions of a snapshot, the signals, the settings and the time.

Nothing in this package performs I/O, reads the clock or imports asyncio or an AWS library (a
test enforces it). Each planner returns plain values that say what to do and why; adapters in
:mod:`scaler.aws` carry them out.
"""
