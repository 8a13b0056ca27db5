//! Sources: where raw frames come from. Each source runs as a task and sends
//! [`Frame`](crate::decode::Frame)s into one channel; the router decodes
//! them. `sim` simulates sensors; `ble` (BlueZ) joins it later.

pub mod sim;
