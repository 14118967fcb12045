#!/bin/bash
# make check's guard for issue 13: the README's two commands start with
# tests/install-deps.sh, so it must exit 0 in an ordinary shell when
# everything is installed.
#
# 1. Run it three times in a plain bash with SIGPIPE, SIGINT and SIGQUIT at
#    their default dispositions (a caller that ignores SIGPIPE would hide a
#    pipeline whose reader stops early: there the writer gets EPIPE instead
#    of dying). Three runs, since such a failure is a race the writer
#    usually, not always, loses.
# 2. Lint every shell script in the repository for the pattern that broke
#    it: a reader that stops early (head, grep -q/-m, awk's exit, sed's q)
#    after a writer in a pipeline. Under pipefail, the writer's SIGPIPE
#    fails the pipeline. Read the whole input instead, or capture the
#    output first and match the variable.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

for i in 1 2 3; do
	rc=0
	out=$(env --default-signal=SIGPIPE,SIGINT,SIGQUIT bash tests/install-deps.sh 2>&1) || rc=$?
	if [ $rc != 0 ] || [[ $out != *"install-deps: ok"* ]]; then
		echo "$out"
		echo "install-deps.sh run $i: exit $rc" >&2
		exit 1
	fi
	echo "install-deps.sh run $i: exit 0"
done

# Files git tracks that are shell scripts (by name or shebang).
scripts=()
while IFS= read -r -d '' f; do
	case $f in
	*.sh | .ci/run) scripts+=("$f") ;;
	*.c | *.h | *.py | *.md | *.proto) ;;
	*)
		first=
		IFS= read -r first <"$f" 2>/dev/null || true
		[[ $first == '#!'*sh* ]] && scripts+=("$f")
		;;
	esac
done < <(git ls-files -z)

early='\|[[:space:]]*(head|grep[[:space:]]+(-[a-zA-Z]+[[:space:]]+)*-[a-zA-Z]*[qm]|awk[^|]*[{;][[:space:]]*exit|sed[[:space:]]+(-[a-z]+[[:space:]]+)*[^|]*q[[:space:]]*['"'"';])'
hits=$(grep -nE "$early" "${scripts[@]}" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*#' || true)
# An awk program after a pipe that spans lines: look for exit until its
# closing quote.
awk_hits=$(awk '
	FNR == 1 { prog = 0 }
	prog && /(^|[^a-z_])exit([^a-z_]|$)/ { print FILENAME ":" FNR ": exit in the awk program of line " start }
	prog && /'"'"'/ { prog = 0; next }
	!prog && /\|[[:space:]]*awk[^'"'"']*'"'"'[^'"'"']*$/ { prog = 1; start = FNR }
' "${scripts[@]}")
# A pipe that ends a line, its reader on the next one.
split_hits=$(awk '
	FNR == 1 { piped = 0 }
	piped && /^[[:space:]]*(head|grep[[:space:]]+(-[a-zA-Z]+[[:space:]]+)*-[a-zA-Z]*[qm]|awk[^|]*[{;][[:space:]]*exit)/ {
		print FILENAME ":" FNR ": early-stopping reader after the pipe ending line " FNR - 1
	}
	{ piped = /\|[[:space:]]*$/ && !/^[[:space:]]*#/ }
' "${scripts[@]}")
hits=$(printf "%s\n%s\n%s" "$hits" "$awk_hits" "$split_hits" | sed "/^$/d")
if [ -n "$hits" ]; then
	echo "$hits"
	echo "a reader that stops early after a writer in a pipeline (see above)" >&2
	exit 1
fi
echo "pipeline lint: ${#scripts[@]} scripts, no early-stopping reader after a writer"
