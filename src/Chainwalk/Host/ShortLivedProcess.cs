using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;

namespace Chainwalk.Host;

/// <summary>
/// Settings for a process that runs one command and exits (the chainwalk CLI sets <see cref="Enabled"/>). Loading a
/// large rule set builds hundreds of thousands of objects that all survive; in a process that exits right after,
/// collecting garbage meanwhile only copies them from generation to generation. <see cref="BulkLoad"/> suspends
/// collections while such a load runs (a no-GC region sized from the input): a restore of 100k rules then spends
/// its time parsing rather than in the collector. Library users and tests (long-lived processes) keep the default.
/// </summary>
public static class ShortLivedProcess
{
    /// <summary>Set by the CLI at start: the process runs one command and exits.</summary>
    public static bool Enabled { get; set; }

    /// <summary>Managed bytes a bulk load may allocate per character of its input before the collector runs anyway.</summary>
    internal const long BytesPerInputChar = 8;

    private const long MaxRegion = 512L << 20;

    private static int _inRegion;

    /// <summary>
    /// While the returned scope is open, no collection runs unless the load allocates more than
    /// <see cref="BytesPerInputChar"/> bytes per input character (then the collector simply runs as usual). Does
    /// nothing unless <see cref="Enabled"/>, for small inputs, or when another scope is open.
    /// </summary>
    public static Scope BulkLoad(int inputChars)
    {
        long bytes = Math.Min(inputChars * BytesPerInputChar, MaxRegion);
        if (!Enabled || inputChars < 1 << 16 || Interlocked.CompareExchange(ref _inRegion, 1, 0) != 0) return default;
        LargeHeap();
        try
        {
            if (GC.TryStartNoGCRegion(bytes)) return new Scope(true);
        }
        catch (ArgumentOutOfRangeException)
        {
            // More than this runtime allows in one region: collect as usual.
        }
        catch (InvalidOperationException)
        {
            // A region was already open (started elsewhere).
        }
        Volatile.Write(ref _inRegion, 0);
        return default;
    }

    private static int _hugePages;

    /// <summary>
    /// Called before a short-lived process builds a large heap (tens of MB: an 8 MB rule text, its string and 100k rules):
    /// asks Linux to back the managed heap with transparent huge pages (<c>madvise(MADV_HUGEPAGE)</c> over the
    /// collector's reserved range), so that it is faulted in 2 MiB at a time instead of 4 KiB (a restore of 100k rules
    /// takes ≈ 12,000 page faults otherwise, ≈ 20 ms). Only where THP is "madvise" or "always"; once per process; any
    /// failure leaves the heap as it was. Does nothing unless <see cref="Enabled"/>.
    /// </summary>
    public static void LargeHeap()
    {
        if (!Enabled || !OperatingSystem.IsLinux() || Interlocked.Exchange(ref _hugePages, 1) != 0) return;
        try
        {
            // A small array lives in a region of the collector's single reserved range: advise the contiguous anonymous
            // mappings around it (the range is reserved PROT_NONE and committed piecewise, so it shows as several).
            var probe = new byte[16];
            GCHandle h = GCHandle.Alloc(probe, GCHandleType.Pinned);
            ulong addr;
            try { addr = (ulong)h.AddrOfPinnedObject(); }
            finally { h.Free(); }
            // Read as bytes through a file handle: the stream, reader and decoder of File.ReadAllText were a few ms of
            // start-up work (their first use) in a command that has no other use for them.
            ReadOnlySpan<byte> maps = ReadProcFile("/proc/self/maps");
            ulong start = 0, end = 0;
            while (!maps.IsEmpty)
            {
                int nl = maps.IndexOf((byte)'\n');
                ReadOnlySpan<byte> line = nl < 0 ? maps : maps[..nl];
                maps = nl < 0 ? default : maps[(nl + 1)..];
                if (!TryMapping(line, out ulong s, out ulong e, out bool anonymous)) continue;
                if (start != 0 && s == end && anonymous)
                {
                    end = e;
                    continue;
                }
                if (start != 0 && end > addr) break;
                if (anonymous) { start = s; end = e; }
                else start = end = 0;
            }
            if (start == 0 || addr < start || addr >= end) return;
            _ = Madvise((nint)start, (nuint)(end - start), MadvHugePage);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or EntryPointNotFoundException or DllNotFoundException)
        {
        }
    }

    private const int MadvHugePage = 14;

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(nint addr, nuint length, int advice);

    /// <summary>A /proc file's content (its size is not known beforehand: read until the end).</summary>
    private static ReadOnlySpan<byte> ReadProcFile(string path)
    {
        using Microsoft.Win32.SafeHandles.SafeFileHandle handle = File.OpenHandle(path);
        byte[] buffer = new byte[64 << 10];
        int length = 0;
        while (true)
        {
            if (length == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
            int n = RandomAccess.Read(handle, buffer.AsSpan(length), length);
            if (n <= 0) break;
            length += n;
        }
        return buffer.AsSpan(0, length);
    }

    /// <summary>One line of /proc/self/maps: "start-end perms offset dev inode [path]"; anonymous when it has no path.</summary>
    internal static bool TryMapping(ReadOnlySpan<byte> line, out ulong start, out ulong end, out bool anonymous)
    {
        start = end = 0;
        anonymous = false;
        int dash = line.IndexOf((byte)'-');
        int space = line.IndexOf((byte)' ');
        if (dash <= 0 || space <= dash) return false;
        if (!TryHex(line[..dash], out start) || !TryHex(line[(dash + 1)..space], out end)) return false;
        // The range, then four fields (permissions, offset, device, inode), then the path if any.
        ReadOnlySpan<byte> rest = line[space..];
        for (int f = 0; f < 4; f++)
        {
            rest = rest.TrimStart((byte)' ');
            int sp = rest.IndexOf((byte)' ');
            if (sp < 0) { rest = default; break; }
            rest = rest[sp..];
        }
        anonymous = rest.Trim((byte)' ').IsEmpty;
        return true;
    }

    private static bool TryHex(ReadOnlySpan<byte> s, out ulong value)
    {
        value = 0;
        if (s.IsEmpty || s.Length > 16) return false;
        foreach (byte b in s)
        {
            int d = b is >= (byte)'0' and <= (byte)'9' ? b - '0' : b is >= (byte)'a' and <= (byte)'f' ? b - 'a' + 10 : b is >= (byte)'A' and <= (byte)'F' ? b - 'A' + 10 : -1;
            if (d < 0) return false;
            value = (value << 4) | (uint)d;
        }
        return true;
    }

    /// <summary>Ends the no-GC region of <see cref="BulkLoad"/> (if it is still open: exceeding its size ends it).</summary>
    public readonly struct Scope(bool started) : IDisposable
    {
        public void Dispose()
        {
            if (!started) return;
            if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
            Volatile.Write(ref _inRegion, 0);
        }
    }
}
