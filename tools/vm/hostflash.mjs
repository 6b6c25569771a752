// A device's flash as a host folder, for a Python VFS running inside the
// MicroPython VM (tools/vm/hostflash.py). The VFS calls these functions through
// a registered JS module; each returns a number (a negative errno on failure)
// or a string (hex data, JSON) and never throws, so every write lands in the
// folder at once and survives resets and restarts of the VM.
//
//   const flash = hostFlash({ root: DIR, flashKb: 2048, fsync: true });
//   vm.registerJsModule("_hostflash", flash.api);
//
// Errors carry MicroPython's errno values (ENOENT 2, not Emscripten's 44), as
// littlefs on an ESP32 raises them. flashKb sets the size (littlefs-like
// accounting in 4 KiB blocks), so "filesystem full" can be tested; 0 means
// unlimited (the simulator's flash, like its CPython runtime's, never fills).
// fsync: sync each file on close (the virtual device over mpremote); the
// simulator turns it off, as its CPython runtime does, since a simulated power
// cut never loses what the host wrote.
//
// Users: tools/vm/vdev.mjs (the virtual device behind a pty) and
// tools/vm/simdevice.mjs (the simulator's VM runtime).
import fs from "node:fs";
import path from "node:path";

const BLOCK_BYTES = 4096;
const DIR_BLOCKS = 2; // a littlefs directory is a metadata pair
export const ERRNO = { ENOENT: 2, EIO: 5, EBADF: 9, EACCES: 13, EEXIST: 17, ENOTDIR: 20, EISDIR: 21,
  EINVAL: 22, ENOSPC: 28, ENOTEMPTY: 39, ENAMETOOLONG: 36 };

function errno(e) {
  return -(ERRNO[e && e.code] || ERRNO.EIO);
}

function blocksFor(size) {
  return Math.max(1, Math.ceil(size / BLOCK_BYTES));
}

export function hostFlash({ root, flashKb = 2048, fsync = true }) {
  const unlimited = !(flashKb > 0);
  const totalBlocks = unlimited ? Infinity : Math.floor((flashKb * 1024) / BLOCK_BYTES);
  fs.mkdirSync(root, { recursive: true });

  // A device path ("/a/b", already absolute and normalised by the VFS) as a
  // host path inside the flash folder; ".." never climbs out of it.
  function hostPath(devicePath) {
    const clean = path.posix.normalize("/" + String(devicePath)).replace(/^(\/\.\.)+/, "");
    return path.join(root, clean);
  }

  function usedBlocks() {
    if (unlimited) return 0;
    let n = DIR_BLOCKS;
    const walk = (dir) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          n += DIR_BLOCKS;
          walk(p);
        } else n += blocksFor(fs.statSync(p).size);
      }
    };
    walk(root);
    return n;
  }

  let used = usedBlocks();
  const files = new Map(); // fd -> {fd, pos, size, append}

  const api = {
    stat(p) {
      try {
        const st = fs.statSync(hostPath(p));
        const mode = st.isDirectory() ? 0x4000 : 0x8000;
        return JSON.stringify([mode, st.isDirectory() ? 0 : st.size, Math.floor(st.mtimeMs / 1000)]);
      } catch (e) {
        return errno(e);
      }
    },
    listdir(p) {
      try {
        const out = [];
        const dir = hostPath(p);
        for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
          const isDir = entry.isDirectory();
          const size = isDir ? 0 : fs.statSync(path.join(dir, entry.name)).size;
          out.push([entry.name, isDir ? 0x4000 : 0x8000, size]);
        }
        out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        return JSON.stringify(out);
      } catch (e) {
        return errno(e);
      }
    },
    mkdir(p) {
      try {
        if (used + DIR_BLOCKS > totalBlocks) return -ERRNO.ENOSPC;
        fs.mkdirSync(hostPath(p));
        used += DIR_BLOCKS;
        return 0;
      } catch (e) {
        return errno(e);
      }
    },
    rmdir(p) {
      try {
        fs.rmdirSync(hostPath(p));
        used = usedBlocks();
        return 0;
      } catch (e) {
        return errno(e);
      }
    },
    remove(p) {
      try {
        const hp = hostPath(p);
        if (fs.statSync(hp).isDirectory()) return -ERRNO.EISDIR;
        fs.unlinkSync(hp);
        used = usedBlocks();
        return 0;
      } catch (e) {
        return errno(e);
      }
    },
    rename(a, b) {
      try {
        fs.renameSync(hostPath(a), hostPath(b));
        used = usedBlocks();
        return 0;
      } catch (e) {
        return errno(e);
      }
    },
    open(p, flags) {
      try {
        const hp = hostPath(p);
        if (fs.existsSync(hp) && fs.statSync(hp).isDirectory()) return -ERRNO.EISDIR;
        const writing = flags !== "r";
        if (writing) used = usedBlocks();
        const fd = fs.openSync(hp, flags);
        const size = fs.fstatSync(fd).size;
        if (writing) used = usedBlocks(); // "w" truncated it
        files.set(fd, { fd, pos: 0, size, append: flags.startsWith("a") });
        return fd;
      } catch (e) {
        return errno(e);
      }
    },
    read(fd, n) {
      const f = files.get(fd);
      if (!f) return -ERRNO.EBADF;
      try {
        const buf = Buffer.alloc(Math.max(0, Math.min(n, 1 << 20)));
        const got = fs.readSync(fd, buf, 0, buf.length, f.pos);
        f.pos += got;
        return buf.subarray(0, got).toString("hex");
      } catch (e) {
        return errno(e);
      }
    },
    write(fd, hex) {
      const f = files.get(fd);
      if (!f) return -ERRNO.EBADF;
      try {
        const data = Buffer.from(hex, "hex");
        if (f.append) f.pos = f.size;
        const newSize = Math.max(f.size, f.pos + data.length);
        const extra = blocksFor(newSize) - blocksFor(f.size);
        if (extra > 0 && used + extra > totalBlocks) return -ERRNO.ENOSPC;
        let off = 0;
        while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off, f.pos + off);
        f.pos += data.length;
        f.size = newSize;
        used += extra;
        return data.length;
      } catch (e) {
        return errno(e);
      }
    },
    seek(fd, offset, whence) {
      const f = files.get(fd);
      if (!f) return -ERRNO.EBADF;
      const base = whence === 0 ? 0 : whence === 1 ? f.pos : f.size;
      if (base + offset < 0) return -ERRNO.EINVAL;
      f.pos = base + offset;
      return f.pos;
    },
    close(fd) {
      const f = files.get(fd);
      if (!f) return -ERRNO.EBADF;
      files.delete(fd);
      try {
        if (fsync) fs.fsyncSync(fd);
        fs.closeSync(fd);
        return 0;
      } catch (e) {
        return errno(e);
      }
    },
    statvfs() {
      const total = unlimited ? 1 << 30 : totalBlocks;
      return JSON.stringify([BLOCK_BYTES, total, Math.max(0, total - used)]);
    },
  };

  return {
    api,
    // Count the blocks in use again (after the folder changed behind the VM's back).
    recount() {
      used = usedBlocks();
    },
    // Close every file the VM left open (a reset: its RAM, and so its handles, are gone).
    closeAll() {
      for (const fd of files.keys()) {
        try {
          fs.closeSync(fd);
        } catch {
          // already gone
        }
      }
      files.clear();
    },
  };
}
