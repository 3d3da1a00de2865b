/**
 * SR-IOV VF tokens: a UUID shared between the user-space owner of a PF (bound to vfio-pci) and the users of its VFs.
 * The PF's owner sets it (`VFIO_DEVICE_FEATURE`, SET | `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN`); a VF of that PF then
 * opens only when the same UUID comes with it, as `"<address> vf_token=<uuid>"` to `VFIO_GROUP_GET_DEVICE_FD`.
 * Linux 6.12's device cdev path (`VFIO_DEVICE_BIND_IOMMUFD`) has no token field and checks none (a token field came
 * with Linux 6.17), so `openDevice` takes the group path for such VFs.
 *
 * ```ts
 * import { openDevice } from "@vfio-ts/vfio";
 * const token = crypto.randomUUID();
 * using pf = openDevice("0000:00:07.0");
 * pf.setVfToken(token);
 * using vf = openDevice("0000:00:17.0", { vfToken: token });
 * ```
 * @module
 */

import { libc } from "../ffi/libc.ts";
import {
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_SET,
  VfioDeviceFeature,
} from "./abi/vfio.ts";
import { SystemError, UnsupportedError, VfioError } from "./errors.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UUID_BYTES = 16;

/**
 * The VF token as the kernel parses it (lower case), or a `VfioError` when `text` is not a UUID.
 *
 * ```ts
 * import { checkVfToken } from "@vfio-ts/vfio";
 * checkVfToken("2AB1C1A4-0C2E-4B3F-9D0E-5E5A0F6A1B2C"); // "2ab1c1a4-0c2e-4b3f-9d0e-5e5a0f6a1b2c"
 * ```
 */
export function checkVfToken(text: string): string {
  if (typeof text !== "string" || !UUID.test(text.trim())) {
    throw new VfioError(`VF token ${JSON.stringify(text)} is not a UUID`, {
      remedy: "a VF token is a UUID such as 2ab1c1a4-0c2e-4b3f-9d0e-5e5a0f6a1b2c (crypto.randomUUID(), uuidgen)",
    });
  }
  return text.trim().toLowerCase();
}

/**
 * The 16 bytes of a UUID in the kernel's `uuid_t` order (the order of the text's hex digits).
 *
 * ```ts
 * import { vfTokenBytes } from "@vfio-ts/vfio";
 * vfTokenBytes("00112233-4455-6677-8899-aabbccddeeff")[0]; // 0x00
 * ```
 */
export function vfTokenBytes(uuid: string): Uint8Array {
  const hex = checkVfToken(uuid).replaceAll("-", "");
  const out = new Uint8Array(UUID_BYTES);
  for (let i = 0; i < UUID_BYTES; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * The name `VFIO_GROUP_GET_DEVICE_FD` takes for a device opened with a VF token: `"<address> vf_token=<uuid>"`.
 *
 * ```ts
 * import { deviceNameWithToken } from "@vfio-ts/vfio";
 * deviceNameWithToken("0000:00:17.0", "2ab1c1a4-0c2e-4b3f-9d0e-5e5a0f6a1b2c");
 * ```
 */
export function deviceNameWithToken(address: string, uuid?: string): string {
  return uuid === undefined ? address : `${address} vf_token=${checkVfToken(uuid)}`;
}

/**
 * Sets the VF token of a PF opened through vfio-pci (`fd`: its device fd). Until a VF of it is open, the token can
 * be changed; while one is, the PF itself opens only with the token too.
 *
 * @throws {UnsupportedError} the device is not an SR-IOV PF on vfio-pci (the kernel's ENOTTY/EINVAL).
 *
 * ```ts ignore
 * setVfToken(pf.fd, pf.name, crypto.randomUUID());
 * ```
 */
export function setVfToken(fd: number, name: string, uuid: string): void {
  const bytes = vfTokenBytes(uuid);
  const arg = VfioDeviceFeature.alloc(UUID_BYTES);
  arg.argsz = VfioDeviceFeature.size + UUID_BYTES;
  arg.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN;
  arg.data.set(bytes);
  try {
    libc.ioctl(fd, VFIO_DEVICE_FEATURE, arg.bytes, { target: "VFIO_DEVICE_FEATURE", kind: "vfio-device-ioctl" });
  } catch (e) {
    if (e instanceof SystemError && (e.code === "ENOTTY" || e.code === "EINVAL")) {
      throw new UnsupportedError(`${name} takes no VF token: it is not an SR-IOV physical function on vfio-pci`, {
        remedy: "set the token on the PF (vfio sriov <pf> names it), not on a VF or another device",
        cause: e,
      });
    }
    throw e;
  }
}
