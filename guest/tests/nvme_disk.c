/* The NVMe controller end to end from a guest driver (runtime/nvme.c), under hvaccel --disk and
 * QEMU -device nvme with the same image:
 *  - the PCI function (class 01:08:02, a BAR0 of at least 16 KiB, MSI-X), CAP and VS;
 *  - Identify controller, namespace and active namespace list; the SMART log; Number of Queues;
 *  - I/O queue pairs on their own MSI-X vectors, refused queue IDs and sizes, queue deletion
 *    rules;
 *  - Read and Write through every PRP layout: PRP1 alone (aligned and with an offset), PRP2 as
 *    the second page, PRP2 as a list, and a 128 KiB transfer whose list starts at an offset,
 *    chains to a second list page and names its pages in reverse order;
 *  - what the host wrote before boot reads back; Write Zeroes, Dataset Management, Flush;
 *  - refused commands: a PRP outside guest RAM, a PRP list entry with an offset, an LBA beyond
 *    the namespace, an unknown opcode;
 *  - a normal shutdown.
 * Every range written is printed ("nvme: wrote LBA N +B") with the byte pattern of pattern():
 * the host test reads the image back through qemu-img and checks it. The command line "ro" says
 * the disk is read-only: writes must then fail and change nothing. */
#include "apic.h"
#include "nvme.h"

#define HOST_LBA 2048 /* the host wrote 0x5a over 128 blocks here before boot */
#define HOST_BLOCKS 128
#define AREA_LBA 4096 /* where the guest writes: one 256 KiB slot per case */
#define SLOT_BLOCKS 512

static struct nvme n;
static uint8_t src[34][NVME_PAGE] __attribute__((aligned(NVME_PAGE)));
static uint8_t dst[34][NVME_PAGE] __attribute__((aligned(NVME_PAGE)));
static uint64_t lists[2][NVME_PAGE / 8] __attribute__((aligned(NVME_PAGE)));
static uint8_t id[NVME_PAGE] __attribute__((aligned(NVME_PAGE)));
static bool read_only;

/* The byte the guest writes at disk offset o: every 512-byte block differs. */
static uint8_t pattern(uint64_t o)
{
    return (uint8_t)((o >> 9) * 31 + (o & 511) * 7 + 1);
}

static unsigned admin(uint8_t opcode, uint32_t nsid, uint32_t dw10, uint32_t dw11, void* buf)
{
    struct nvme_cmd c = {{0}};
    c.dw[0] = opcode;
    c.dw[1] = nsid;
    c.dw[6] = (uint32_t)(uintptr_t)buf;
    c.dw[10] = dw10;
    c.dw[11] = dw11;
    return nvme_submit(&n, 0, &c);
}

/* A transfer of `blocks` blocks whose first byte is at offset `off` of the first page; page k
 * of the transfer is `pages[k]`. PRP2 is the second page or a list at byte `list_off` of
 * lists[0], chaining to lists[1] when lists[0] fills. */
struct xfer {
    uint64_t pages[34];
    unsigned npages, off, blocks;
    uint64_t prp1, prp2;
};

static void build(struct xfer* x, unsigned list_off)
{
    unsigned len = x->blocks * 512;
    x->npages = (x->off + len + NVME_PAGE - 1) / NVME_PAGE;
    x->prp1 = x->pages[0] + x->off;
    x->prp2 = 0;
    if (x->npages == 2)
        x->prp2 = x->pages[1];
    if (x->npages <= 2)
        return;
    uint64_t* e = (uint64_t*)((uint8_t*)lists[0] + list_off);
    x->prp2 = (uintptr_t)e;
    for (unsigned k = 1; k < x->npages; ++k) {
        bool last_slot = ((uintptr_t)(e + 1) & (NVME_PAGE - 1)) == 0;
        if (last_slot && k + 1 < x->npages) {
            *e = (uintptr_t)lists[1]; /* the page's last entry points to the next list */
            e = lists[1];
        }
        *e++ = x->pages[k];
    }
}

static uint8_t* byte_at(const struct xfer* x, unsigned t)
{
    unsigned a = x->off + t;
    return (uint8_t*)(uintptr_t)(x->pages[a / NVME_PAGE] + a % NVME_PAGE);
}

/* Byte loops over the buffers run in ring 3, where guest code runs natively on every host
 * (ring 0 may be emulated instruction by instruction). */
enum { FILL, VERIFY, SET, EQUAL };
struct job {
    int op;
    const struct xfer* x; /* FILL, VERIFY: the transfer at `lba` */
    uint64_t lba;
    uint8_t* buf; /* SET, EQUAL: `len` bytes of `value` */
    unsigned len;
    uint8_t value;
    bool ok;
    unsigned bad; /* VERIFY, EQUAL: the first byte that differs */
};

static void user_job(void* arg)
{
    struct job* j = arg;
    unsigned len = j->x ? j->x->blocks * 512 : j->len;
    j->ok = true;
    for (unsigned t = 0; t < len && j->ok; ++t) {
        uint8_t* b = j->x ? byte_at(j->x, t) : j->buf + t;
        uint8_t want = j->x ? pattern(j->lba * 512 + t) : j->value;
        if (j->op == FILL || j->op == SET)
            *b = want;
        else if (*b != want)
            j->ok = false, j->bad = t;
    }
}

static bool in_user(struct job j)
{
    rt_run_user(user_job, &j, false);
    if (!j.ok)
        rt_printf("byte %u differs\n", j.bad);
    return j.ok;
}

static void set(void* buf, uint8_t value, unsigned len)
{
    in_user((struct job){.op = SET, .buf = buf, .len = len, .value = value});
}

static bool all(void* buf, uint8_t value, unsigned len)
{
    return in_user((struct job){.op = EQUAL, .buf = buf, .len = len, .value = value});
}

/* Writes then reads back `x` at `lba` through the same PRP layout on queue `qid`; true when
 * every byte came back. */
static bool round_trip(struct xfer* x, uint64_t lba, unsigned qid, unsigned list_off)
{
    build(x, list_off);
    in_user((struct job){.op = FILL, .x = x, .lba = lba});
    unsigned s = nvme_rw(&n, qid, NVME_IO_WRITE, lba, x->blocks, x->prp1, x->prp2);
    if (s) {
        rt_printf("write status %#x\n", s);
        return false;
    }
    rt_printf("nvme: wrote LBA %u +%u\n", (unsigned)lba, x->blocks);
    /* The same pages, now in dst. */
    for (unsigned k = 0; k < x->npages; ++k)
        x->pages[k] += (uintptr_t)dst - (uintptr_t)src;
    build(x, list_off);
    set(dst, 0, sizeof dst);
    s = nvme_rw(&n, qid, NVME_IO_READ, lba, x->blocks, x->prp1, x->prp2);
    if (s) {
        rt_printf("read status %#x\n", s);
        return false;
    }
    return in_user((struct job){.op = VERIFY, .x = x, .lba = lba});
}

static void contiguous(struct xfer* x, unsigned first_page, unsigned off, unsigned blocks)
{
    memset(x, 0, sizeof *x);
    x->off = off;
    x->blocks = blocks;
    for (unsigned k = 0; k < 34 - first_page; ++k)
        x->pages[k] = (uintptr_t)src[first_page + k];
}

static uint64_t blocks_total;
static unsigned io_queues = 1;

static void check_identify(void)
{
    rt_check(admin(NVME_ADMIN_IDENTIFY, 0, 1, 0, id) == 0, "[5.15] Identify controller");
    char sn[21];
    memcpy(sn, id + 4, 20);
    sn[20] = 0;
    for (int i = 19; i >= 0 && sn[i] == ' '; --i)
        sn[i] = 0;
    uint16_t vid = (uint16_t)(id[0] | id[1] << 8);
    uint32_t nn = id[516] | id[517] << 8 | id[518] << 16 | (uint32_t)id[519] << 24;
    uint16_t oncs = (uint16_t)(id[520] | id[521] << 8);
    rt_check(vid == n.dev.vendor, "[5.15.2.1] VID is the PCI vendor ID (%#x)", vid);
    rt_check(nn >= 1, "[5.15.2.1] at least one namespace (NN %u)", nn);
    rt_check((oncs & 0xc) == 0xc, "[5.15.2.1] ONCS offers Write Zeroes and DSM (%#x)", oncs);
    rt_check(id[525] & 1, "[5.15.2.1] a volatile write cache");

    rt_check(admin(NVME_ADMIN_IDENTIFY, 1, 0, 0, id) == 0, "[5.15] Identify namespace 1");
    uint64_t nsze = 0;
    for (int i = 7; i >= 0; --i)
        nsze = nsze << 8 | id[i];
    unsigned lbaf = id[26] & 0xf;
    unsigned lbads = id[128 + 4 * lbaf + 2];
    rt_check(lbads == 9, "[5.15.2.2] 512-byte blocks (LBADS %u)", lbads);
    blocks_total = nsze;
    rt_printf("nvme: serial=%s blocks=%u\n", sn, (unsigned)nsze);

    rt_check(admin(NVME_ADMIN_IDENTIFY, 0, 2, 0, id) == 0 && id[0] == 1 && id[4] == 0,
             "[5.15.2.3] the active namespace list is {1}");
    rt_check(admin(NVME_ADMIN_GET_LOG_PAGE, 0xffffffffu, 0x02 | (127u << 16), 0, id) == 0,
             "[5.14.1.2] SMART / health log");
    rt_check(admin(NVME_ADMIN_SET_FEATURES, 0, 0x07, 3u | 3u << 16, 0) == 0,
             "[5.21.1.7] Set Features: number of queues");
    unsigned sq = (n.last_dw0 & 0xffff) + 1, cq = (n.last_dw0 >> 16) + 1;
    io_queues = sq < cq ? sq : cq;
    if (io_queues > NVME_MAX_IO_QUEUES)
        io_queues = NVME_MAX_IO_QUEUES;
    rt_printf("nvme: %u I/O queue pairs offered\n", sq < cq ? sq : cq);
}

static void check_queues(void)
{
    for (unsigned q = 1; q <= io_queues; ++q)
        rt_check(nvme_create_io_queues(&n, q) == 0, "[5.4, 5.5] I/O queue pair %u created", q);
    /* QSIZE 0 (one entry) is never a valid size. */
    rt_check(admin(NVME_ADMIN_CREATE_CQ, 0, 9u, 1u, id) == NVME_SC(1, 2),
             "[5.3] a one-entry completion queue: Invalid Queue Size");
    rt_check(admin(NVME_ADMIN_CREATE_CQ, 0, 1u | 15u << 16, 1u, id) == NVME_SC(1, 1),
             "[5.3] creating a live queue ID again: Invalid Queue Identifier");
    rt_check(admin(NVME_ADMIN_DELETE_CQ, 0, 1u, 0, 0) == NVME_SC(1, 0xc),
             "[5.6] deleting a completion queue its submission queue uses: Invalid Queue Deletion");
    rt_check(admin(NVME_ADMIN_DELETE_SQ, 0, 0xffffu, 0, 0) == NVME_SC(1, 1),
             "[5.7] deleting an absent queue: Invalid Queue Identifier");
}

static void check_transfers(void)
{
    struct xfer x;
    uint64_t lba = AREA_LBA;
    contiguous(&x, 0, 0, 8);
    rt_check(round_trip(&x, lba, 1, 0), "[4.3] 4 KiB through PRP1 alone");
    contiguous(&x, 0, 0x800, 1);
    rt_check(round_trip(&x, lba += SLOT_BLOCKS, 1, 0), "[4.3] 512 bytes at an offset in PRP1");
    contiguous(&x, 0, 0x100, 8);
    rt_check(round_trip(&x, lba += SLOT_BLOCKS, 1, 0),
             "[4.3] 4 KiB at an offset: PRP2 is the second page");
    contiguous(&x, 0, 0x200, 16);
    rt_check(round_trip(&x, lba += SLOT_BLOCKS, 1, 0),
             "[4.3] 8 KiB over three pages: PRP2 is a list");
    /* 32 pages in reverse order, the list at the last three entries of its page, chaining. */
    memset(&x, 0, sizeof x);
    x.blocks = 256;
    for (unsigned k = 0; k < 32; ++k)
        x.pages[k] = (uintptr_t)src[31 - k];
    rt_check(round_trip(&x, lba += SLOT_BLOCKS, 1, NVME_PAGE - 24),
             "[4.3] 128 KiB, a list at an offset chained to a second list, pages out of order");
    for (unsigned q = 2; q <= io_queues; ++q) {
        contiguous(&x, 0, 0, 8);
        rt_check(round_trip(&x, lba + 256 + 8 * q, q, 0), "[4.3] 4 KiB through queue %u", q);
    }
}

static void check_commands(void)
{
    set(dst, 0, 2 * NVME_PAGE);
    bool host =
        nvme_rw(&n, 1, NVME_IO_READ, HOST_LBA, 16, (uintptr_t)dst[0], (uintptr_t)dst[1]) == 0;
    rt_check(host && all(dst, 0x5a, 2 * NVME_PAGE),
             "[6.9] what the host wrote before boot reads back");

    struct nvme_cmd c = {{0}};
    c.dw[0] = NVME_IO_WRITE_ZEROES;
    c.dw[1] = 1;
    c.dw[10] = HOST_LBA + HOST_BLOCKS / 2;
    c.dw[12] = HOST_BLOCKS / 2 - 1;
    rt_check(nvme_submit(&n, 1, &c) == 0, "[6.16] Write Zeroes");
    rt_printf("nvme: zeroed LBA %u +%u\n", HOST_LBA + HOST_BLOCKS / 2, HOST_BLOCKS / 2);
    set(dst, 0xff, 2 * NVME_PAGE);
    bool zero = nvme_rw(&n, 1, NVME_IO_READ, HOST_LBA + HOST_BLOCKS / 2, 16, (uintptr_t)dst[0],
                        (uintptr_t)dst[1]) == 0;
    rt_check(zero && all(dst, 0, 2 * NVME_PAGE), "[6.16] and the blocks read as zeros");

    /* Deallocate one range (DLFEAT decides what it reads as afterwards: not checked). */
    uint32_t* range = (uint32_t*)id;
    memset(id, 0, 16);
    range[1] = 8;                          /* length in blocks */
    range[2] = AREA_LBA + 7 * SLOT_BLOCKS; /* a range nobody reads */
    memset(&c, 0, sizeof c);
    c.dw[0] = NVME_IO_DSM;
    c.dw[1] = 1;
    c.dw[6] = (uint32_t)(uintptr_t)id;
    c.dw[10] = 0;       /* one range */
    c.dw[11] = 1u << 2; /* deallocate */
    rt_check(nvme_submit(&n, 1, &c) == 0, "[6.7] Dataset Management: deallocate");
    memset(&c, 0, sizeof c);
    c.dw[0] = NVME_IO_FLUSH;
    c.dw[1] = 1;
    rt_check(nvme_submit(&n, 1, &c) == 0, "[6.8] Flush");
}

static void check_refusals(void)
{
    rt_check(nvme_rw(&n, 1, NVME_IO_READ, AREA_LBA, 1, 1ull << 36, 0) != 0,
             "[4.3] a PRP outside guest RAM fails the command");
    struct xfer x;
    contiguous(&x, 0, 0x200, 16);
    build(&x, 0);
    lists[0][1] += 0x10;
    rt_check(nvme_rw(&n, 1, NVME_IO_READ, AREA_LBA, 16, x.prp1, x.prp2) == NVME_SC(0, 0x13),
             "[4.3] a PRP list entry with an offset: PRP Offset Invalid");
    rt_check(nvme_rw(&n, 1, NVME_IO_READ, blocks_total, 1, (uintptr_t)dst[0], 0) ==
                 NVME_SC(0, 0x80),
             "[6.9] a read past the namespace: LBA Out of Range");
    struct nvme_cmd c = {{0}};
    c.dw[0] = 0x7f;
    c.dw[1] = 1;
    rt_check(nvme_submit(&n, 1, &c) == NVME_SC(0, 1),
             "[4.6.1.2.1] an unknown opcode: Invalid Command Opcode");
}

static void check_read_only(void)
{
    set(src, 0x33, NVME_PAGE);
    rt_check(nvme_rw(&n, 1, NVME_IO_WRITE, HOST_LBA, 8, (uintptr_t)src[0], 0) != 0,
             "[6.15] a write to a read-only disk fails");
    set(dst, 0, NVME_PAGE);
    bool same = nvme_rw(&n, 1, NVME_IO_READ, HOST_LBA, 8, (uintptr_t)dst[0], 0) == 0;
    rt_check(same && all(dst, 0x5a, NVME_PAGE), "[6.15] and changed nothing");
}

void guest_main(void)
{
    const char* cmd = (const char*)(uintptr_t)rt_multiboot()->cmdline;
    for (const char* p = cmd; p && *p; ++p)
        if (strncmp(p, "ro", 2) == 0 && (p[2] == 0 || p[2] == ' ') && (p == cmd || p[-1] == ' '))
            read_only = true;
    apic_enable(0xff);
    struct pci_dev d;
    if (!rt_check(nvme_init(&n, 0xc0100000), "[7.6.1] the controller resets and becomes ready"))
        rt_done();
    d = n.dev;
    rt_check(pci_bar_size(&d, 0) >= 0x4000, "BAR0 holds at least 16 KiB (%#x)",
             pci_bar_size(&d, 0));
    uint32_t vs = nvme_reg32(&n, 0x08);
    rt_check(vs >= 0x10200, "[3.1.2] version 1.2 or later (%#x)", vs);
    rt_check(((n.cap & 0xffff) + 1) >= NVME_QUEUE_ENTRIES && ((n.cap >> 48) & 0xf) == 0,
             "[3.1.1] CAP: MQES and 4 KiB pages (%#llx)", (unsigned long long)n.cap);
    check_identify();
    check_queues();
    unsigned used = io_queues;
    if (read_only) {
        check_read_only();
        used = 1; /* only queue 1 carried commands */
    } else {
        check_transfers();
        check_commands();
        check_refusals();
    }
    /* Completions raised while interrupts were off are taken at the next sti; hlt. */
    apic_tick_start(NVME_TICK_VECTOR);
    for (unsigned q = 1, ticks = 0; q <= used && ticks < 5000; ++ticks)
        if (n.irqs[q] >= 1)
            ++q;
        else
            rt_wait_irq();
    apic_tick_stop(NVME_TICK_VECTOR);
    for (unsigned q = 1; q <= used; ++q)
        rt_check(n.irqs[q] >= 1, "[3.1.9] completions on queue %u raised MSI-X vector %u (%u)", q,
                 q, n.irqs[q]);
    for (unsigned q = io_queues; q >= 1; --q)
        rt_check(nvme_delete_io_queues(&n, q) == 0, "[5.6, 5.7] queue pair %u deleted", q);
    rt_check(nvme_shutdown(&n), "[7.6.2] a normal shutdown completes");
    rt_done();
}
