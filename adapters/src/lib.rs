//! Candle models of the DiT families cachedit supports, built on shared block designs.
