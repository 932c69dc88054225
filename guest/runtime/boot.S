/*
 * hvaccel guest runtime: multiboot v1 entry, switch to long mode, jump to C.
 * Entered as QEMU's -kernel does: 32-bit protected mode, flat segments, paging off,
 * EAX = 0x2BADB002, EBX = multiboot info (Multiboot 0.6.96 3.2).
 * Every ring-0 instruction is expensive on some hosts (emulated), so the page tables are built
 * by the assembler, not by a loop: 4 GiB identity mapped with 2 MiB pages, user-accessible
 * (ring-3 hot loops run on the same mappings), the last GiB (APIC, IOAPIC) uncached.
 */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, want memory info */

/* CR4, CR3, EFER and CR0 for long mode with paging: the same for the BSP (entered in 32-bit
 * protected mode) and the APs (entered in real mode; PE and PG are set together). */
.macro enable_long_mode
    movl $0x6a0, %eax             /* CR4: PAE | PGE | OSFXSR | OSXMMEXCPT */
    movl %eax, %cr4
    movl $pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx        /* IA32_EFER: LME | SCE */
    rdmsr
    orl $0x101, %eax
    wrmsr
    movl $0x80000011, %eax        /* CR0: PG | ET | PE */
    movl %eax, %cr0
.endm

    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .text.boot, "ax"
    .code32
    .globl _start
_start:
    movl %eax, rt_mb_magic
    movl %ebx, rt_mb_info
    lgdt gdt_ptr
    enable_long_mode
    ljmp $0x08, $long_mode

    .code64
long_mode:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movq $rt_boot_stack_top, %rsp
    call rt_start                 /* never returns */
1:  hlt
    jmp 1b

/* GDT: null, kernel code 0x08, kernel data 0x10, user data 0x18, user code 0x20, TSS 0x28.
 * The order is what SYSCALL/SYSRET require (STAR). */
    .section .data
    .balign 16
    .globl rt_gdt
rt_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00cff2000000ffff
    .quad 0x00affa000000ffff
    .quad 0, 0                    /* TSS descriptor, filled by rt_start */
gdt_end:
gdt_ptr:
    .word gdt_end - rt_gdt - 1
    .quad rt_gdt

    .section .data.pagetables, "aw"
    .balign 4096
pml4:
    .quad pdpt + 0x7
    .fill 511, 8, 0
pdpt:
    .quad pd + 0x7
    .quad pd + 0x1000 + 0x7
    .quad pd + 0x2000 + 0x7
    .quad pd + 0x3000 + 0x7
    .fill 508, 8, 0
pd:
    .set addr, 0
    .rept 1536
    .quad addr | 0x87             /* P | RW | US | PS */
    .set addr, addr + 0x200000
    .endr
    .rept 512
    .quad addr | 0x9f             /* P | RW | US | PWT | PCD | PS */
    .set addr, addr + 0x200000
    .endr

    .section .bss
    .balign 16
    .globl rt_mb_magic, rt_mb_info
rt_mb_magic: .long 0
rt_mb_info:  .long 0
    .balign 4096
    .space 16384
    .globl rt_boot_stack_top
rt_boot_stack_top:

/*
 * Application-processor start-up (SDM Vol3 9.4.4): the BSP copies this trampoline to
 * RT_AP_TRAMPOLINE (0x8000) and sends INIT-SIPI-SIPI with vector 0x08. The AP starts in real mode
 * at 0800:0000 and goes straight to long mode (PE and PG set together), then to rt_ap_start on
 * the stack the BSP left in rt_ap_stack.
 */
    .section .text
    .code16
    .globl rt_ap_trampoline, rt_ap_trampoline_end
rt_ap_trampoline:
    cli
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (ap_gdt_ptr - rt_ap_trampoline)
    enable_long_mode
    ljmpl $0x08, $ap_long_mode
    .balign 8
ap_gdt_ptr:
    .word gdt_end - rt_gdt - 1
    .long rt_gdt
rt_ap_trampoline_end:

    .code64
ap_long_mode:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movq rt_ap_stack(%rip), %rsp
    call rt_ap_start              /* never returns */
2:  hlt
    jmp 2b
