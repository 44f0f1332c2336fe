//! The flow engine: model, loader, checker, interpreter (pure: no I/O, no clock).
