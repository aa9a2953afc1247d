#!/usr/bin/env bash
# Checks that no object file of the project contains a raw `syscall` instruction except the
# emulator's allowed range (src/sim/trampoline.S). Enclave-side code must reach the kernel only
# through exits (trapped libc calls, OCALLs) or exitless RPC, never by a syscall of its own that
# could hide from the accounting. Usage: check_enclave_syscalls.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR}
fail=0
checked=0
while IFS= read -r obj; do
  checked=$((checked + 1))
  case "$obj" in */trampoline.S.o) continue ;; esac
  # Disassemble and find syscall/sysenter/int $0x80 with the function they sit in.
  hits=$(objdump -d --no-show-raw-insn "$obj" | awk '
    /^[0-9a-f]+ <.*>:$/ { fn = $2 }
    /\t(syscall|sysenter|int +\$0x80)/ { print fn ": " $0 }')
  if [ -n "$hits" ]; then
    echo "raw syscall instruction in $obj:"; echo "$hits"; fail=1
  fi
done < <(find "$build" -name '*.o' -not -path '*/CMakeFiles/CMakeScratch/*' \
          -not -name 'CMake*' | sort)
if [ "$checked" -eq 0 ]; then echo "check_enclave_syscalls: no objects under $build"; exit 1; fi
# The trampoline itself must stay tiny: exactly two syscall instructions.
tramp=$(find "$build" -name 'trampoline.S.o' | head -n1)
n=$(objdump -d "$tramp" | grep -c $'\tsyscall' || true)
if [ "$n" -ne 2 ]; then echo "trampoline has $n syscall instructions, expected 2"; fail=1; fi
[ $fail -eq 0 ] && echo "check_enclave_syscalls: $checked objects, no raw syscalls outside the trampoline"
exit $fail
