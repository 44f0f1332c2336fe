use clap::Parser;
use std::process::ExitCode;

mod cli;

// mimalloc, not glibc's malloc: a call's messages are made on one thread and freed on
// another (SIP task, call task, store writer), and glibc then takes the owning arena's
// lock; at 2,000 call set-ups a second malloc and those locks were ~15 % of the tokio
// workers' samples. Built without transparent huge pages (`no_thp`): with them, each
// purged span came back as a fresh 2 MiB page for the kernel to zero (~10 % of the
// workers' samples, 1.6 GB zeroed in an 8 s run); without, its page faults are as
// few as glibc's. Same runs alternating: workers' CPU 282, 278 ticks against 307 for
// glibc and 317 with huge pages.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    hotline::logs::init(cli.log_format);
    cli::run(cli)
}
