//! The IVR designer's tools: simulated calls, flow tests, diagrams, the JSON Schema.
pub mod script;
pub mod sim;
