# The shell tests' assertions, sourced: `check NAME COMMAND...` counts a
# pass when COMMAND succeeds and prints "FAIL: NAME" otherwise (the script
# reports $passed/$failed and exits by them); `json_assert FILE EXPR` runs a
# Python expression over the JSON document `j`.
check() {  # check NAME COMMAND...: COMMAND must succeed
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}

json_assert() {  # json_assert FILE PYTHON-EXPR(using j)
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"
}
