/**
 * PCI configuration-space facts from the Linux 6.12 uapi header `linux/pci_regs.h`: register offsets of the
 * type-0 header, command/status bits, BAR encoding, capability ids, and the registers of the PM, MSI, MSI-X
 * and PCI Express capabilities the library touches.
 *
 * Offsets inside a capability are relative to the capability's own offset in config space. Extended
 * capabilities start at PCI_CFG_SPACE_SIZE; their 32-bit header is id (bits 0-15), version (16-19) and next
 * offset (20-31). Every value here is checked against the real header by `tests/unit/abi.test.ts`.
 *
 * ```ts
 * import { PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_SPACE_IO, PCI_COMMAND_MASTER } from "@vfio-ts/vfio/abi";
 * const bar0 = 0xfebd000c;
 * const isIo = (bar0 & PCI_BASE_ADDRESS_SPACE_IO) !== 0; // false
 * const is64 = (bar0 & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64; // true
 * const command = 0x0006 | PCI_COMMAND_MASTER; // memory + bus master
 * ```
 * @module
 */

// ---------------------------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------------------------

/** Size of conventional PCI config space (and the offset where extended capabilities begin). */
export const PCI_CFG_SPACE_SIZE = 256;
/** Size of PCI Express extended config space. */
export const PCI_CFG_SPACE_EXP_SIZE = 4096;
/** Size of the standard config header (type 0 or 1). */
export const PCI_STD_HEADER_SIZEOF = 64;
/** Number of BARs in a type-0 header. */
export const PCI_STD_NUM_BARS = 6;

// ---------------------------------------------------------------------------------------------------------------
// Standard header (type 0)
// ---------------------------------------------------------------------------------------------------------------

/** Offset of the 16-bit vendor id. */
export const PCI_VENDOR_ID = 0x00;
/** Offset of the 16-bit device id. */
export const PCI_DEVICE_ID = 0x02;
/** Offset of the 16-bit command register. */
export const PCI_COMMAND = 0x04;
/** Command bit: respond to I/O space accesses. */
export const PCI_COMMAND_IO = 0x1;
/** Command bit: respond to memory space accesses. */
export const PCI_COMMAND_MEMORY = 0x2;
/** Command bit: allow the device to master the bus (DMA, MSI). */
export const PCI_COMMAND_MASTER = 0x4;
/** Command bit: report parity errors. */
export const PCI_COMMAND_PARITY = 0x40;
/** Command bit: enable SERR# reporting. */
export const PCI_COMMAND_SERR = 0x100;
/** Command bit: disable legacy INTx assertion. */
export const PCI_COMMAND_INTX_DISABLE = 0x400;
/** Offset of the 16-bit status register. */
export const PCI_STATUS = 0x06;
/** Status bit: an INTx interrupt is pending. */
export const PCI_STATUS_INTERRUPT = 0x08;
/** Status bit: the capability list at PCI_CAPABILITY_LIST is valid. */
export const PCI_STATUS_CAP_LIST = 0x10;
/** Status bit: the device detected a parity error. */
export const PCI_STATUS_DETECTED_PARITY = 0x8000;
/** Offset of the 32-bit class code (high 24 bits) and revision (low 8 bits). */
export const PCI_CLASS_REVISION = 0x08;
/** Offset of the 8-bit revision id. */
export const PCI_REVISION_ID = 0x08;
/** Offset of the 8-bit programming interface. */
export const PCI_CLASS_PROG = 0x09;
/** Offset of the 16-bit class and subclass. */
export const PCI_CLASS_DEVICE = 0x0a;
/** Offset of the 8-bit cache line size. */
export const PCI_CACHE_LINE_SIZE = 0x0c;
/** Offset of the 8-bit latency timer. */
export const PCI_LATENCY_TIMER = 0x0d;
/** Offset of the 8-bit header type. */
export const PCI_HEADER_TYPE = 0x0e;
/** Header type bits: the layout (0 normal, 1 bridge, 2 CardBus). */
export const PCI_HEADER_TYPE_MASK = 0x7f;
/** Header type: normal device. */
export const PCI_HEADER_TYPE_NORMAL = 0;
/** Header type: PCI-to-PCI bridge. */
export const PCI_HEADER_TYPE_BRIDGE = 1;
/** Header type bit: the device has more than one function. */
export const PCI_HEADER_TYPE_MFD = 0x80;
/** Offset of the 8-bit built-in self test register. */
export const PCI_BIST = 0x0f;
/** Offset of the 32-bit BAR 0. */
export const PCI_BASE_ADDRESS_0 = 0x10;
/** Offset of the 32-bit BAR 1. */
export const PCI_BASE_ADDRESS_1 = 0x14;
/** Offset of the 32-bit BAR 2. */
export const PCI_BASE_ADDRESS_2 = 0x18;
/** Offset of the 32-bit BAR 3. */
export const PCI_BASE_ADDRESS_3 = 0x1c;
/** Offset of the 32-bit BAR 4. */
export const PCI_BASE_ADDRESS_4 = 0x20;
/** Offset of the 32-bit BAR 5. */
export const PCI_BASE_ADDRESS_5 = 0x24;
/** BAR bit: set for I/O space, clear for memory space. */
export const PCI_BASE_ADDRESS_SPACE = 0x01;
/** BAR space value: I/O space. */
export const PCI_BASE_ADDRESS_SPACE_IO = 0x01;
/** BAR space value: memory space. */
export const PCI_BASE_ADDRESS_SPACE_MEMORY = 0x00;
/** Memory BAR bits: the address type. */
export const PCI_BASE_ADDRESS_MEM_TYPE_MASK = 0x06;
/** Memory BAR type: 32-bit address. */
export const PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x00;
/** Memory BAR type: 64-bit address; the next BAR holds the high 32 bits. */
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04;
/** Memory BAR bit: prefetchable. */
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08;
/** Memory BAR address mask of a 32-bit BAR register (C `~0x0fUL`, taken to 32 bits). */
export const PCI_BASE_ADDRESS_MEM_MASK = 0xfffffff0;
/** I/O BAR address mask of a 32-bit BAR register (C `~0x03UL`, taken to 32 bits). */
export const PCI_BASE_ADDRESS_IO_MASK = 0xfffffffc;
/** Offset of the 16-bit subsystem vendor id. */
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
/** Offset of the 16-bit subsystem id. */
export const PCI_SUBSYSTEM_ID = 0x2e;
/** Offset of the 32-bit expansion ROM BAR. */
export const PCI_ROM_ADDRESS = 0x30;
/** ROM BAR bit: decode enabled. */
export const PCI_ROM_ADDRESS_ENABLE = 0x01;
/** ROM BAR address mask. */
export const PCI_ROM_ADDRESS_MASK = 0xfffff800;
/** Offset of the 8-bit pointer to the first capability. */
export const PCI_CAPABILITY_LIST = 0x34;
/** Offset of the 8-bit interrupt line (IRQ routing, informational). */
export const PCI_INTERRUPT_LINE = 0x3c;
/** Offset of the 8-bit interrupt pin (0 none, 1-4 INTA-INTD). */
export const PCI_INTERRUPT_PIN = 0x3d;

// ---------------------------------------------------------------------------------------------------------------
// Capability list
// ---------------------------------------------------------------------------------------------------------------

/** Capability offset of the 8-bit capability id. */
export const PCI_CAP_LIST_ID = 0;
/** Capability offset of the 8-bit next-capability pointer. */
export const PCI_CAP_LIST_NEXT = 1;
/** Capability offset of the 16-bit capability-specific flags. */
export const PCI_CAP_FLAGS = 2;
/** Size of the generic capability header. */
export const PCI_CAP_SIZEOF = 4;
/** Capability id: power management. */
export const PCI_CAP_ID_PM = 0x01;
/** Capability id: AGP. */
export const PCI_CAP_ID_AGP = 0x02;
/** Capability id: vital product data. */
export const PCI_CAP_ID_VPD = 0x03;
/** Capability id: slot identification. */
export const PCI_CAP_ID_SLOTID = 0x04;
/** Capability id: MSI. */
export const PCI_CAP_ID_MSI = 0x05;
/** Capability id: CompactPCI hot swap. */
export const PCI_CAP_ID_CHSWP = 0x06;
/** Capability id: PCI-X. */
export const PCI_CAP_ID_PCIX = 0x07;
/** Capability id: HyperTransport. */
export const PCI_CAP_ID_HT = 0x08;
/** Capability id: vendor-specific. */
export const PCI_CAP_ID_VNDR = 0x09;
/** Capability id: debug port. */
export const PCI_CAP_ID_DBG = 0x0a;
/** Capability id: CompactPCI central resource control. */
export const PCI_CAP_ID_CCRC = 0x0b;
/** Capability id: PCI standard hot-plug controller. */
export const PCI_CAP_ID_SHPC = 0x0c;
/** Capability id: bridge subsystem vendor/device id. */
export const PCI_CAP_ID_SSVID = 0x0d;
/** Capability id: AGP target PCI-PCI bridge. */
export const PCI_CAP_ID_AGP3 = 0x0e;
/** Capability id: secure device. */
export const PCI_CAP_ID_SECDEV = 0x0f;
/** Capability id: PCI Express. */
export const PCI_CAP_ID_EXP = 0x10;
/** Capability id: MSI-X. */
export const PCI_CAP_ID_MSIX = 0x11;
/** Capability id: SATA. */
export const PCI_CAP_ID_SATA = 0x12;
/** Capability id: advanced features (conventional PCI FLR). */
export const PCI_CAP_ID_AF = 0x13;
/** Capability id: enhanced allocation. */
export const PCI_CAP_ID_EA = 0x14;
/** Highest capability id the header knows. */
export const PCI_CAP_ID_MAX: number = PCI_CAP_ID_EA;

// ---------------------------------------------------------------------------------------------------------------
// Power management capability
// ---------------------------------------------------------------------------------------------------------------

/** PM capability offset of the 16-bit PM capabilities register. */
export const PCI_PM_PMC = 2;
/** PM capabilities bits: the version of the PM specification the function complies with. */
export const PCI_PM_CAP_VER_MASK = 0x0007;
/** PM capability offset of the 16-bit control/status register. */
export const PCI_PM_CTRL = 4;
/** PM control bits: the current power state (0 = D0 ... 3 = D3hot). */
export const PCI_PM_CTRL_STATE_MASK = 0x0003;
/** PM control bit: the device keeps its state across D3hot to D0 (no soft reset). */
export const PCI_PM_CTRL_NO_SOFT_RESET = 0x0008;
/** PM control bit: PME# enabled. */
export const PCI_PM_CTRL_PME_ENABLE = 0x0100;
/** PM control bit: PME# status (write 1 to clear). */
export const PCI_PM_CTRL_PME_STATUS = 0x8000;

// ---------------------------------------------------------------------------------------------------------------
// MSI capability
// ---------------------------------------------------------------------------------------------------------------

/** MSI capability offset of the 16-bit message control register. */
export const PCI_MSI_FLAGS = 0x02;
/** MSI control bit: MSI enabled. */
export const PCI_MSI_FLAGS_ENABLE = 0x0001;
/** MSI control bits: log2 of the number of vectors the device supports (bits 1-3). */
export const PCI_MSI_FLAGS_QMASK = 0x000e;
/** MSI control bits: log2 of the number of vectors enabled (bits 4-6). */
export const PCI_MSI_FLAGS_QSIZE = 0x0070;
/** MSI control bit: the device supports 64-bit message addresses. */
export const PCI_MSI_FLAGS_64BIT = 0x0080;
/** MSI control bit: the device supports per-vector masking. */
export const PCI_MSI_FLAGS_MASKBIT = 0x0100;
/** MSI capability offset of the low 32 bits of the message address. */
export const PCI_MSI_ADDRESS_LO = 0x04;
/** MSI capability offset of the high 32 bits of the message address (64-bit capable devices). */
export const PCI_MSI_ADDRESS_HI = 0x08;
/** MSI capability offset of the 16-bit message data (32-bit devices). */
export const PCI_MSI_DATA_32 = 0x08;
/** MSI capability offset of the mask bits (32-bit devices). */
export const PCI_MSI_MASK_32 = 0x0c;
/** MSI capability offset of the 16-bit message data (64-bit devices). */
export const PCI_MSI_DATA_64 = 0x0c;
/** MSI capability offset of the mask bits (64-bit devices). */
export const PCI_MSI_MASK_64 = 0x10;

// ---------------------------------------------------------------------------------------------------------------
// MSI-X capability
// ---------------------------------------------------------------------------------------------------------------

/** MSI-X capability offset of the 16-bit message control register. */
export const PCI_MSIX_FLAGS = 2;
/** MSI-X control bits: table size minus one. */
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
/** MSI-X control bit: mask all vectors. */
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
/** MSI-X control bit: MSI-X enabled. */
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
/** MSI-X capability offset of the 32-bit table offset/BIR register. */
export const PCI_MSIX_TABLE = 4;
/** MSI-X table register bits: the BAR index (BIR) holding the table. */
export const PCI_MSIX_TABLE_BIR = 0x00000007;
/** MSI-X table register bits: the table's offset within its BAR. */
export const PCI_MSIX_TABLE_OFFSET = 0xfffffff8;
/** MSI-X capability offset of the 32-bit pending-bit-array offset/BIR register. */
export const PCI_MSIX_PBA = 8;
/** MSI-X PBA register bits: the BAR index (BIR) holding the PBA. */
export const PCI_MSIX_PBA_BIR = 0x00000007;
/** MSI-X PBA register bits: the PBA's offset within its BAR. */
export const PCI_MSIX_PBA_OFFSET = 0xfffffff8;
/** MSI-X BIR mask (the kernel's deprecated alias of PCI_MSIX_PBA_BIR). */
export const PCI_MSIX_FLAGS_BIRMASK: number = PCI_MSIX_PBA_BIR;
/** Size of the MSI-X capability registers. */
export const PCI_CAP_MSIX_SIZEOF = 12;
/** Size of one MSI-X table entry. */
export const PCI_MSIX_ENTRY_SIZE = 16;
/** MSI-X entry offset of the low 32 bits of the message address. */
export const PCI_MSIX_ENTRY_LOWER_ADDR = 0x0;
/** MSI-X entry offset of the high 32 bits of the message address. */
export const PCI_MSIX_ENTRY_UPPER_ADDR = 0x4;
/** MSI-X entry offset of the 32-bit message data. */
export const PCI_MSIX_ENTRY_DATA = 0x8;
/** MSI-X entry offset of the 32-bit vector control. */
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 0xc;
/** MSI-X vector control bit: the vector is masked. */
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x00000001;

// ---------------------------------------------------------------------------------------------------------------
// PCI Express capability
// ---------------------------------------------------------------------------------------------------------------

/** PCIe capability offset of the 16-bit capabilities register. */
export const PCI_EXP_FLAGS = 0x02;
/** PCIe capabilities bits: capability version. */
export const PCI_EXP_FLAGS_VERS = 0x000f;
/** PCIe capabilities bits: device/port type. */
export const PCI_EXP_FLAGS_TYPE = 0x00f0;
/** PCIe device/port type: endpoint. */
export const PCI_EXP_TYPE_ENDPOINT = 0x0;
/** PCIe device/port type: legacy endpoint. */
export const PCI_EXP_TYPE_LEG_END = 0x1;
/** PCIe device/port type: root port. */
export const PCI_EXP_TYPE_ROOT_PORT = 0x4;
/** PCIe device/port type: switch upstream port. */
export const PCI_EXP_TYPE_UPSTREAM = 0x5;
/** PCIe device/port type: switch downstream port. */
export const PCI_EXP_TYPE_DOWNSTREAM = 0x6;
/** PCIe device/port type: PCIe to PCI/PCI-X bridge. */
export const PCI_EXP_TYPE_PCI_BRIDGE = 0x7;
/** PCIe device/port type: PCI/PCI-X to PCIe bridge. */
export const PCI_EXP_TYPE_PCIE_BRIDGE = 0x8;
/** PCIe device/port type: root complex integrated endpoint. */
export const PCI_EXP_TYPE_RC_END = 0x9;
/** PCIe device/port type: root complex event collector. */
export const PCI_EXP_TYPE_RC_EC = 0xa;
/** PCIe capability offset of the 32-bit device capabilities register. */
export const PCI_EXP_DEVCAP = 0x04;
/** Device capabilities bits: max payload size supported. */
export const PCI_EXP_DEVCAP_PAYLOAD = 0x00000007;
/** Device capabilities bit: function-level reset supported. */
export const PCI_EXP_DEVCAP_FLR = 0x10000000;
/** PCIe capability offset of the 16-bit device control register. */
export const PCI_EXP_DEVCTL = 0x08;
/** Device control bit: relaxed ordering enabled. */
export const PCI_EXP_DEVCTL_RELAX_EN = 0x0010;
/** Device control bits: max payload size. */
export const PCI_EXP_DEVCTL_PAYLOAD = 0x00e0;
/** Device control bit: no-snoop enabled. */
export const PCI_EXP_DEVCTL_NOSNOOP_EN = 0x0800;
/** Device control bits: max read request size. */
export const PCI_EXP_DEVCTL_READRQ = 0x7000;
/** Device control bit: initiate function-level reset (endpoints). */
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
/** PCIe capability offset of the 16-bit device status register. */
export const PCI_EXP_DEVSTA = 0x0a;
/** Device status bit: transactions pending. */
export const PCI_EXP_DEVSTA_TRPND = 0x0020;
/** PCIe capability offset of the 32-bit link capabilities register. */
export const PCI_EXP_LNKCAP = 0x0c;
/** Link capabilities bits: max link speed. */
export const PCI_EXP_LNKCAP_SLS = 0x0000000f;
/** Link speed code (LNKCAP max speed, LNKSTA current speed): 2.5 GT/s. */
export const PCI_EXP_LNKCAP_SLS_2_5GB = 0x1;
/** Link speed code (LNKCAP max speed, LNKSTA current speed): 5.0 GT/s. */
export const PCI_EXP_LNKCAP_SLS_5_0GB = 0x2;
/** Link speed code (LNKCAP max speed, LNKSTA current speed): 8.0 GT/s. */
export const PCI_EXP_LNKCAP_SLS_8_0GB = 0x3;
/** Link speed code (LNKCAP max speed, LNKSTA current speed): 16.0 GT/s. */
export const PCI_EXP_LNKCAP_SLS_16_0GB = 0x4;
/** Link speed code (LNKCAP max speed, LNKSTA current speed): 32.0 GT/s. */
export const PCI_EXP_LNKCAP_SLS_32_0GB = 0x5;
/** Link speed code (LNKCAP max speed, LNKSTA current speed): 64.0 GT/s. */
export const PCI_EXP_LNKCAP_SLS_64_0GB = 0x6;
/** Link capabilities bits: max link width. */
export const PCI_EXP_LNKCAP_MLW = 0x000003f0;
/** PCIe capability offset of the 16-bit link control register. */
export const PCI_EXP_LNKCTL = 0x10;
/** PCIe capability offset of the 16-bit link status register. */
export const PCI_EXP_LNKSTA = 0x12;
/** Link status bits: current link speed (1 = 2.5 GT/s, 2 = 5, 3 = 8, 4 = 16, 5 = 32, 6 = 64). */
export const PCI_EXP_LNKSTA_CLS = 0x000f;
/** Link status bits: negotiated link width. */
export const PCI_EXP_LNKSTA_NLW = 0x03f0;
/** Shift of the negotiated link width in the link status register. */
export const PCI_EXP_LNKSTA_NLW_SHIFT = 4;
/** PCIe capability offset of the 32-bit device capabilities 2 register. */
export const PCI_EXP_DEVCAP2 = 0x24;
/** PCIe capability offset of the 16-bit device control 2 register. */
export const PCI_EXP_DEVCTL2 = 0x28;

// ---------------------------------------------------------------------------------------------------------------
// Extended capabilities (PCI Express config space from PCI_CFG_SPACE_SIZE)
// ---------------------------------------------------------------------------------------------------------------

/** Extended capability id: advanced error reporting. */
export const PCI_EXT_CAP_ID_ERR = 0x01;
/** Extended capability id: virtual channel. */
export const PCI_EXT_CAP_ID_VC = 0x02;
/** Extended capability id: device serial number. */
export const PCI_EXT_CAP_ID_DSN = 0x03;
/** Extended capability id: power budgeting. */
export const PCI_EXT_CAP_ID_PWR = 0x04;
/** Extended capability id: root complex link declaration. */
export const PCI_EXT_CAP_ID_RCLD = 0x05;
/** Extended capability id: root complex internal link control. */
export const PCI_EXT_CAP_ID_RCILC = 0x06;
/** Extended capability id: root complex event collector. */
export const PCI_EXT_CAP_ID_RCEC = 0x07;
/** Extended capability id: multi-function virtual channel. */
export const PCI_EXT_CAP_ID_MFVC = 0x08;
/** Extended capability id: virtual channel (MFVC-capable variant). */
export const PCI_EXT_CAP_ID_VC9 = 0x09;
/** Extended capability id: root complex register block. */
export const PCI_EXT_CAP_ID_RCRB = 0x0a;
/** Extended capability id: vendor-specific. */
export const PCI_EXT_CAP_ID_VNDR = 0x0b;
/** Extended capability id: config access (obsolete). */
export const PCI_EXT_CAP_ID_CAC = 0x0c;
/** Extended capability id: access control services. */
export const PCI_EXT_CAP_ID_ACS = 0x0d;
/** Extended capability id: alternative routing-id interpretation. */
export const PCI_EXT_CAP_ID_ARI = 0x0e;
/** Extended capability id: address translation services. */
export const PCI_EXT_CAP_ID_ATS = 0x0f;
/** Extended capability id: single-root I/O virtualization. */
export const PCI_EXT_CAP_ID_SRIOV = 0x10;
/** Extended capability id: multi-root I/O virtualization. */
export const PCI_EXT_CAP_ID_MRIOV = 0x11;
/** Extended capability id: multicast. */
export const PCI_EXT_CAP_ID_MCAST = 0x12;
/** Extended capability id: page request interface. */
export const PCI_EXT_CAP_ID_PRI = 0x13;
/** Extended capability id: reserved for AMD. */
export const PCI_EXT_CAP_ID_AMD_XXX = 0x14;
/** Extended capability id: resizable BAR. */
export const PCI_EXT_CAP_ID_REBAR = 0x15;
/** Extended capability id: dynamic power allocation. */
export const PCI_EXT_CAP_ID_DPA = 0x16;
/** Extended capability id: TLP processing hints requester. */
export const PCI_EXT_CAP_ID_TPH = 0x17;
/** Extended capability id: latency tolerance reporting. */
export const PCI_EXT_CAP_ID_LTR = 0x18;
/** Extended capability id: secondary PCI Express. */
export const PCI_EXT_CAP_ID_SECPCI = 0x19;
/** Extended capability id: protocol multiplexing. */
export const PCI_EXT_CAP_ID_PMUX = 0x1a;
/** Extended capability id: process address space id. */
export const PCI_EXT_CAP_ID_PASID = 0x1b;
/** Extended capability id: downstream port containment. */
export const PCI_EXT_CAP_ID_DPC = 0x1d;
/** Extended capability id: L1 PM substates. */
export const PCI_EXT_CAP_ID_L1SS = 0x1e;
/** Extended capability id: precision time measurement. */
export const PCI_EXT_CAP_ID_PTM = 0x1f;
/** Extended capability id: designated vendor-specific. */
export const PCI_EXT_CAP_ID_DVSEC = 0x23;
/** Extended capability id: data link feature. */
export const PCI_EXT_CAP_ID_DLF = 0x25;
/** Extended capability id: physical layer 16.0 GT/s. */
export const PCI_EXT_CAP_ID_PL_16GT = 0x26;
/** Extended capability id: native PCIe enclosure management. */
export const PCI_EXT_CAP_ID_NPEM = 0x29;
/** Extended capability id: physical layer 32.0 GT/s. */
export const PCI_EXT_CAP_ID_PL_32GT = 0x2a;
/** Extended capability id: data object exchange. */
export const PCI_EXT_CAP_ID_DOE = 0x2e;
/** Highest extended capability id the header knows. */
export const PCI_EXT_CAP_ID_MAX: number = PCI_EXT_CAP_ID_DOE;
/** Size of the device serial number capability. */
export const PCI_EXT_CAP_DSN_SIZEOF = 12;
/** Size of the SR-IOV capability. */
export const PCI_EXT_CAP_SRIOV_SIZEOF = 0x40;

// SR-IOV extended capability (PCI_EXT_CAP_ID_SRIOV): register offsets from the capability's start
/** SR-IOV capabilities register. */
export const PCI_SRIOV_CAP = 0x04;
/** SR-IOV control register. */
export const PCI_SRIOV_CTRL = 0x08;
/** SR-IOV control: VF enable. */
export const PCI_SRIOV_CTRL_VFE = 0x0001;
/** SR-IOV control: VF memory space enable. */
export const PCI_SRIOV_CTRL_MSE = 0x0008;
/** SR-IOV control: ARI capable hierarchy. */
export const PCI_SRIOV_CTRL_ARI = 0x0010;
/** SR-IOV status register. */
export const PCI_SRIOV_STATUS = 0x0a;
/** Initial VFs. */
export const PCI_SRIOV_INITIAL_VF = 0x0c;
/** Total VFs. */
export const PCI_SRIOV_TOTAL_VF = 0x0e;
/** Number of VFs (as enabled). */
export const PCI_SRIOV_NUM_VF = 0x10;
/** Function dependency link. */
export const PCI_SRIOV_FUNC_LINK = 0x12;
/** First VF offset (routing-id offset from the PF). */
export const PCI_SRIOV_VF_OFFSET = 0x14;
/** VF stride (routing-id distance between consecutive VFs). */
export const PCI_SRIOV_VF_STRIDE = 0x16;
/** VF device id. */
export const PCI_SRIOV_VF_DID = 0x1a;
/** Supported page sizes. */
export const PCI_SRIOV_SUP_PGSIZE = 0x1c;
/** System page size. */
export const PCI_SRIOV_SYS_PGSIZE = 0x20;
/** VF BAR0 (six VF BARs follow). */
export const PCI_SRIOV_BAR = 0x24;
/** Number of VF BARs. */
export const PCI_SRIOV_NUM_BARS = 6;
