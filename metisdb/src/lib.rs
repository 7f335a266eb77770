//! MetisDB
