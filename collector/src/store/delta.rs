//! Counter deltas and rates with 32-bit wrap and reset detection (pure functions).
