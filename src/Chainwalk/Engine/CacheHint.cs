using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Chainwalk.Engine;

/// <summary>Prefetch hints shared by the packet path's structures. Hints only: nothing is read, nothing changes.</summary>
internal static class CacheHint
{
    /// <summary>
    /// Asks for <paramref name="item"/> whole: its first and its last byte. An array's elements start only 8-byte aligned,
    /// so an element of 16 bytes or more can cross a cache line, and its first line alone leaves the rest a miss later
    /// (a flat entry's target and jump, a tuple-index entry's Id, an arrival record's jump, a by-source slot).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Whole<T>(ref T item)
    {
        if (!Sse.IsSupported) return;
        byte* p = (byte*)Unsafe.AsPointer(ref item);
        Sse.Prefetch0(p);
        Sse.Prefetch0(p + Unsafe.SizeOf<T>() - 1);
    }
}
