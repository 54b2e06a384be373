//! `regent man --out-dir DIR` and `regent completions SHELL`: the man pages and
//! shell completions, generated from the same clap definition the command parses
//! with, so they never disagree with it. Hidden: they are for packagers
//! (`dist/deb/build.sh` calls them), not for callers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `regent man`.
#[derive(clap::Args)]
pub struct ManArgs {
    /// Write `regent.1` and one `regent-SUBCOMMAND.1` per visible subcommand here.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
}

/// `regent completions`.
#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for (to standard output).
    pub shell: clap_complete::Shell,
}

/// Write the man pages of `cmd` (the whole CLI) into `args.out_dir`.
pub fn man(cmd: clap::Command, args: ManArgs) -> ExitCode {
    match write_pages(cmd, &args.out_dir) {
        Ok(n) => {
            println!("wrote {n} man page(s) to {}", args.out_dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("regent man: {}: {e}", args.out_dir.display());
            ExitCode::from(crate::exit::OTHER)
        }
    }
}

/// One page for the command and one per visible subcommand, nested ones
/// included (named `regent-SUB`, `regent-totp-enroll`, as the pages' own
/// cross-references expect). Returns how many were written.
fn write_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd;
    // After `build`, a subcommand's display name is `regent-SUB` and its bin
    // name `regent SUB`: the page's title and synopsis.
    cmd.build();
    write_tree(&cmd, dir)
}

fn write_tree(cmd: &clap::Command, dir: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for sub in cmd.get_subcommands() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            written += write_tree(sub, dir)?;
        }
    }
    write_page(cmd.clone(), dir)?;
    Ok(written + 1)
}

fn write_page(cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd);
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    std::fs::write(dir.join(man.get_filename()), roff)
}

/// Write the completion script for `args.shell` to standard output.
pub fn completions(cmd: clap::Command, args: CompletionsArgs) -> ExitCode {
    let mut cmd = cmd;
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut script);
    print!("{}", String::from_utf8_lossy(&script));
    ExitCode::SUCCESS
}
