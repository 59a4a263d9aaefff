# Count the primes below 1000 by trial division (result: 168).
# Shows loops, a local call with its own stack frame, and the stack.
mov %r6, 2              # candidate
mov %r7, 0              # primes found
loop:
jge %r6, 1000, done
mov %r1, %r6
call local is_prime
add %r7, %r0
add %r6, 1
ja loop
done:
stxdw [%r10-8], %r7     # round-trip the count through the stack
ldxdw %r0, [%r10-8]
exit

# r0 = 1 when r1 is prime (r1 >= 2), else 0.
is_prime:
mov %r2, 2
try:
mov %r3, %r2
mul %r3, %r2
jgt %r3, %r1, prime
mov %r4, %r1
mod %r4, %r2
jeq %r4, 0, composite
add %r2, 1
ja try
prime:
mov %r0, 1
exit
composite:
mov %r0, 0
exit
