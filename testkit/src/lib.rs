//! Test harnesses shared by the test suites.
