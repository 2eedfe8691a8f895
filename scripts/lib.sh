# Helpers for the scripts' output (bash; source it): headings, and commands echoed so that they paste.

# Headings are bold on a terminal, plain otherwise or with NO_COLOR set (https://no-color.org).
bold="" plain=""
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
# quote prints its arguments as shell words that paste back: plain words as they are, others in
# single quotes (an s3:// URL's '&' would otherwise end the command).
quote() {
  local a out=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  printf '%s' "${out[*]}"
}
# run echoes a command, shell-quoted, then runs it.
run() { printf '$ %s\n' "$(quote "$@")"; "$@"; }
