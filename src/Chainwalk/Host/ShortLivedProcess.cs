using System.Runtime;

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
