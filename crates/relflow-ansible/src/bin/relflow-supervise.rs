//! Standalone per-run supervisor: `relflow-supervise __supervise <grace-ms> -- <program> [args...]`.
//! The relflow binary does the same when its argv[1] is `__supervise`.
fn main() {
    relflow_ansible::supervise_main(std::env::args_os())
}
