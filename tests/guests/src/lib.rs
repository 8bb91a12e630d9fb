//! Shared nothing: each guest is a binary under src/bin.
