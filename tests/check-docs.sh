#!/bin/sh
# Checks that the documentation matches the program.
#
# Usage: sh tests/check-docs.sh BINARY        ("make check-docs" runs it)
#
# Compares the settings that "BINARY -d" prints, one "name = default" per
# line, with the CONFIGURATION PARAMETERS of man/zoha.conf.5 and with the
# settings in zoha.conf.example: the same names, each once, and the same
# defaults (hostname excepted, because its default is the machine's name).
# Compares the options in the first line of "BINARY -h" with the OPTIONS of
# man/zoha.8. Runs "mandoc -T lint -W warning" on every man page when mandoc
# is installed.
#
# Conventions the check relies on:
#   man/zoha.conf.5  ".It Ic NAME Pq default: Li VALUE" (VALUE in double
#                    quotes when it contains a comma or a space), or
#                    ".It Ic NAME Pq default: empty", or for hostname a
#                    description in words.
#   zoha.conf.example  "#NAME = VALUE" with no space after the "#"; comment
#                    text always has a space after its "#".
#   man/zoha.8       ".It Fl X" for each option in OPTIONS.
#
# Exit status: 0 when everything matches, 1 when something differs or a
# check cannot run, 2 for a usage error.

set -u

if [ $# -ne 1 ]; then
    echo "usage: sh tests/check-docs.sh BINARY" >&2
    exit 2
fi
binary=$1
top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
conf_page=$top/man/zoha.conf.5
example=$top/zoha.conf.example
man_pages="$top/man/zoha.8 $top/man/zoha.conf.5 $top/man/zoha-userdb.5"
tab=$(printf '\t')

work=$(mktemp -d "${TMPDIR:-/tmp}/check-docs.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

failures=0
fail() {
    printf 'check-docs: FAIL: %s\n' "$*" >&2
    failures=$((failures + 1))
}

# Prints each NAME that occurs more than once in file $1 (NAME<TAB>VALUE lines).
duplicate_names() {
    cut -f1 "$1" | sort | uniq -d
}

for file in "$conf_page" "$example" $man_pages; do
    if [ ! -r "$file" ]; then
        echo "check-docs: FAIL: $file is missing or unreadable" >&2
        exit 1
    fi
done
if [ ! -x "$binary" ]; then
    echo "check-docs: FAIL: $binary is not an executable file; build it first (cargo build --release)" >&2
    exit 1
fi

# 1. The settings and defaults that the program prints, as NAME<TAB>VALUE lines.
if ! "$binary" -d >"$work/program.raw" 2>"$work/program.err"; then
    echo "check-docs: FAIL: \"$binary -d\" failed:" >&2
    cat "$work/program.err" >&2
    exit 1
fi
setting_line='^\([a-z][a-z0-9_]*\)[ ]*=[ ]*\(.*[^ ]\)\{0,1\}[ ]*$'
sed -n "s/$setting_line/\\1$tab\\2/p" "$work/program.raw" >"$work/program"
if grep -v "$setting_line" "$work/program.raw" >"$work/program.bad"; then
    fail "\"$binary -d\" printed lines that are not \"name = default\":"
    sed 's/^/    /' "$work/program.bad" >&2
fi
if [ ! -s "$work/program" ]; then
    fail "\"$binary -d\" printed no settings"
fi

# 2. The settings documented in the CONFIGURATION PARAMETERS section.
awk -v tab="$tab" '
    /^\.Sh / { in_section = ($0 == ".Sh CONFIGURATION PARAMETERS"); next }
    in_section && /^\.It Ic [a-z]/ {
        name = $3
        rest = $0
        sub(/^\.It Ic [^ ]+ */, "", rest)
        if (rest !~ /^Pq default: /) {
            print name tab "?no \"Pq default:\" on its .It line"
            next
        }
        sub(/^Pq default: /, "", rest)
        gsub(/\\&/, "", rest)
        if (rest ~ /^Li /) {
            sub(/^Li /, "", rest)
            if (rest ~ /^".*"$/)
                rest = substr(rest, 2, length(rest) - 2)
        } else if (rest == "empty") {
            rest = ""
        } else {
            rest = "?" rest
        }
        print name tab rest
    }
' "$conf_page" >"$work/manual"
if [ ! -s "$work/manual" ]; then
    fail "$conf_page documents no settings in CONFIGURATION PARAMETERS (expected lines \".It Ic NAME Pq default: ...\")"
fi

# 3. The settings in the example file, commented out or not.
sed -n "s/^#\{0,1\}\([a-z][a-z0-9_]*\)[ ]*=[ ]*\(.*[^ ]\)\{0,1\}[ ]*$/\\1$tab\\2/p" \
    "$example" >"$work/example"
if [ ! -s "$work/example" ]; then
    fail "$example lists no settings (expected lines \"#name = default\")"
fi

# compare_settings TAG FILE LABEL: compares the names in FILE (NAME<TAB>VALUE
# lines, called LABEL in messages) with the program's, then the defaults, and
# reports each difference. TAG keeps the temporary files of each call apart.
compare_settings() {
    file=$2
    what=$3
    cut -f1 "$work/program" | sort -u >"$work/names.program"
    cut -f1 "$file" | sort -u >"$work/names.$1"
    for name in $(comm -23 "$work/names.program" "$work/names.$1"); do
        fail "$what does not document setting \"$name\", which \"$binary -d\" prints"
    done
    for name in $(comm -13 "$work/names.program" "$work/names.$1"); do
        fail "$what documents \"$name\", which is not a setting of \"$binary -d\""
    done
    for name in $(duplicate_names "$file"); do
        fail "$what documents \"$name\" more than once"
    done
    awk -F "$tab" -v what="$what" '
        NR == FNR { default[$1] = $2; known[$1] = 1; next }
        !($1 in known) || $1 == "hostname" { next }
        $2 ~ /^\?/ {
            printf "%s states no literal default for \"%s\" (%s); the program says \"%s\"\n",
                what, $1, substr($2, 2), default[$1]
            next
        }
        $2 != default[$1] {
            printf "%s gives \"%s\" the default \"%s\", but the program says \"%s\"\n",
                what, $1, $2, default[$1]
        }
    ' "$work/program" "$file" >"$work/defaults.$1"
    while IFS= read -r line; do
        fail "$line"
    done <"$work/defaults.$1"
}

compare_settings manual "$work/manual" "man/zoha.conf.5"
compare_settings example "$work/example" "zoha.conf.example"

# 4. The options of the usage line against the OPTIONS section of zoha(8).
if ! "$binary" -h >"$work/usage" 2>&1; then
    fail "\"$binary -h\" failed"
fi
head -n 1 "$work/usage" | tr ' []' '\n\n\n' | sed -n 's/^-\([A-Za-z0-9]\)$/\1/p' \
    | sort -u >"$work/options.program"
awk '
    /^\.Sh / { in_section = ($0 == ".Sh OPTIONS"); next }
    in_section && /^\.It Fl [A-Za-z0-9]/ { print $3 }
' "$top/man/zoha.8" | sort -u >"$work/options.manual"
if [ ! -s "$work/options.program" ]; then
    fail "the first line of \"$binary -h\" names no options"
fi
for option in $(comm -23 "$work/options.program" "$work/options.manual"); do
    fail "man/zoha.8 OPTIONS does not document -$option, which \"$binary -h\" lists"
done
for option in $(comm -13 "$work/options.program" "$work/options.manual"); do
    fail "man/zoha.8 OPTIONS documents -$option, which \"$binary -h\" does not list"
done

# 5. The man pages themselves. mandoc prints messages about its own page
# index (such as "outdated mandoc.db") without a level; those are shown as
# notes but do not fail the check.
linted="man pages linted"
if command -v mandoc >/dev/null 2>&1; then
    for page in $man_pages; do
        mandoc -T lint -W warning "$page" >"$work/lint" 2>&1
        status=$?
        if grep -E ': (WARNING|ERROR|UNSUPP|BADARG|SYSERR): ' "$work/lint" >"$work/lint.bad"; then
            fail "mandoc -T lint -W warning ${page#"$top"/}:"
            sed 's/^/    /' "$work/lint.bad" >&2
        elif [ "$status" -ne 0 ]; then
            fail "mandoc -T lint -W warning ${page#"$top"/} exited with status $status"
        fi
        if grep -v -E ': (WARNING|ERROR|UNSUPP|BADARG|SYSERR): ' "$work/lint" >"$work/lint.other"; then
            sed 's/^/check-docs: note: /' "$work/lint.other" >&2
        fi
    done
else
    echo "check-docs: note: mandoc is not installed; the man pages were not linted (apt-get install mandoc)" >&2
    linted="man pages not linted"
fi

if [ "$failures" -ne 0 ]; then
    echo "check-docs: $failures problem(s) found" >&2
    exit 1
fi
count=$(wc -l <"$work/program" | tr -d ' ')
echo "check-docs: OK: $count settings match man/zoha.conf.5 and zoha.conf.example; options match man/zoha.8; $linted"
