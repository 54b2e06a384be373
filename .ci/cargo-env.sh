# Sourced by .ci/run (as root): make `cargo` available the way the invoking
# user has it, or say exactly what to run instead.
#
# Under `sudo`, PATH is sudo's secure_path and HOME is /root, so a rustup
# install in the user's home is not found. Then: RUSTUP_HOME is the user's
# ~/.rustup (toolchains, only read), CARGO_HOME stays root's own ~/.cargo
# (registry, git checkouts, `cargo install`ed tools: written as root, so never
# in the user's home), and PATH gets both bin directories. At exit, files this
# run made in the checkout's target directories are given back to the user, and
# the user's ~/.cargo and ~/.rustup are checked to hold nothing of root's.

regent_ci_user_home=""
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
  regent_ci_user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -n "$regent_ci_user_home" ] && [ -x "$regent_ci_user_home/.cargo/bin/cargo" ]; then
    export RUSTUP_HOME="${RUSTUP_HOME:-$regent_ci_user_home/.rustup}"
    export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
    if [ "$CARGO_HOME" = "$regent_ci_user_home/.cargo" ]; then
      echo "CARGO_HOME must not be $SUDO_USER's own ($CARGO_HOME): root would write there" >&2
      exit 1
    fi
    mkdir -p "$CARGO_HOME/bin"
    export PATH="$CARGO_HOME/bin:$PATH:$regent_ci_user_home/.cargo/bin"
    echo "cargo: $SUDO_USER's toolchains (RUSTUP_HOME=$RUSTUP_HOME), CARGO_HOME=$CARGO_HOME"
  else
    cat >&2 <<MSG
.ci/run: cargo is not on PATH${SUDO_USER:+ (sudo resets it) and not in ~$SUDO_USER/.cargo/bin}.
Install Rust (https://rustup.rs) as your user, then run:
    sudo env "PATH=\$HOME/.cargo/bin:\$PATH" RUSTUP_HOME="\$HOME/.rustup" CARGO_HOME=/root/.cargo bash .ci/run
MSG
    exit 1
  fi
fi

regent_ci_at_exit() {
  local status=$?
  if [ -n "$regent_ci_user_home" ] && [ -n "${SUDO_UID:-}" ] && [ -n "${SUDO_GID:-}" ]; then
    local dir
    for dir in "${CARGO_TARGET_DIR:-target}" fuzz/target; do
      # Only a checkout that is the user's: give back what this run made in it.
      if [ -d "$dir" ] && [ "$(stat -c %u .)" = "$SUDO_UID" ]; then
        chown -R --from=0:0 "$SUDO_UID:$SUDO_GID" "$dir" || true
      fi
    done
    local rooted
    rooted=$(find "$regent_ci_user_home/.cargo" "$regent_ci_user_home/.rustup" -user 0 -print -quit 2>/dev/null || true)
    if [ -n "$rooted" ]; then
      echo ".ci/run: root-owned files in $SUDO_USER's cargo or rustup home, e.g. $rooted" >&2
      [ "$status" -ne 0 ] || status=1
    fi
  fi
  exit "$status"
}
trap regent_ci_at_exit EXIT
