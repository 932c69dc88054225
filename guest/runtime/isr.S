/*
 * Interrupt and exception entry: 256 stubs of 16 bytes each (the IDT points at
 * rt_isr_stubs + 16 * vector), a common path that saves the general registers into a
 * struct rt_frame and calls rt_isr(frame), and the SYSCALL entry that ends a ring-3 run.
 */
    .text
    .balign 16
    .globl rt_isr_stubs
rt_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    /* SDM Vol3 6.13: these exceptions push an error code; the others get a dummy 0. */
    .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call rt_isr
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq

/*
 * rt_user_enter(fn, arg, user_stack_top, rflags): runs fn(arg) in ring 3 and returns when fn
 * returns. The user-mode trampoline ends with UD2 at rt_user_exit; rt_isr recognises that #UD
 * from CPL 3 and irets to rt_user_resume at CPL 0 on the saved kernel stack. (A fault rather
 * than SYSCALL: exceptions behave the same under every KVM, SYSCALL from ring 3 does not.)
 * Callee-saved registers and the kernel stack pointer are kept in rt_user_ctx while ring 3
 * runs; RFLAGS is restored on return.
 */
    .globl rt_user_enter
rt_user_enter:
    pushfq
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, rt_user_ctx(%rip)
    pushq $0x1b                   /* SS: user data | RPL 3 */
    pushq %rdx                    /* RSP */
    pushq %rcx                    /* RFLAGS */
    pushq $0x23                   /* CS: user code | RPL 3 */
    leaq user_trampoline(%rip), %rax
    pushq %rax
    iretq

user_trampoline:                  /* ring 3: fn in %rdi, arg in %rsi */
    movq %rdi, %rax
    movq %rsi, %rdi
    andq $-16, %rsp
    call *%rax
    .globl rt_user_exit
rt_user_exit:
    ud2                           /* back to ring 0 through rt_isr */

    .globl rt_user_resume
rt_user_resume:                   /* CPL 0, RSP = rt_user_ctx */
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    popfq
    ret

    .bss
    .balign 8
    .globl rt_user_ctx
rt_user_ctx: .quad 0
