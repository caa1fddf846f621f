//! Scheduled host operations: virus scans (VirusScanSchedule) on the calendar.

pub mod antivirus;
