//! Parsing, validation and generation behind cachedit's proc macros.
