/* Links the demo guest image into the hvaccel binary (see cmd/demo.cpp). */
    .section .rodata
    .balign 16
    .globl hv_demo_guest, hv_demo_guest_end
hv_demo_guest:
    .incbin HV_DEMO_GUEST
hv_demo_guest_end:
    .section .note.GNU-stack, "", @progbits
