using System.Globalization;

namespace Chainwalk.Wire;

/// <summary>
/// A capture timestamp to the nanosecond: whole seconds since the Unix epoch and the nanoseconds after them
/// (always below 1 000 000 000). Finer file resolutions (pcapng <c>if_tsresol</c> above 9) are cut to nanoseconds.
/// </summary>
public readonly record struct CaptureTimestamp(long Seconds, uint Nanoseconds) : IComparable<CaptureTimestamp>
{
    private const uint NanosPerSecond = 1_000_000_000;

    /// <summary>The timestamp with the nanoseconds carried into the seconds when they reach a second.</summary>
    public static CaptureTimestamp Normalized(long seconds, ulong nanoseconds) =>
        new(seconds + (long)(nanoseconds / NanosPerSecond), (uint)(nanoseconds % NanosPerSecond));

    /// <summary>The nearest <see cref="DateTimeOffset"/> (which counts in 100 ns ticks, so the last two digits go).</summary>
    public DateTimeOffset ToDateTimeOffset() =>
        DateTimeOffset.FromUnixTimeSeconds(Seconds).AddTicks(Nanoseconds / 100);

    public static CaptureTimestamp FromDateTimeOffset(DateTimeOffset time)
    {
        long ticks = time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        long seconds = Math.DivRem(ticks, TimeSpan.TicksPerSecond, out long rest);
        if (rest < 0)
        {
            seconds--;
            rest += TimeSpan.TicksPerSecond;
        }
        return new CaptureTimestamp(seconds, (uint)rest * 100);
    }

    public int CompareTo(CaptureTimestamp other) =>
        Seconds != other.Seconds ? Seconds.CompareTo(other.Seconds) : Nanoseconds.CompareTo(other.Nanoseconds);

    public static bool operator <(CaptureTimestamp a, CaptureTimestamp b) => a.CompareTo(b) < 0;

    public static bool operator >(CaptureTimestamp a, CaptureTimestamp b) => a.CompareTo(b) > 0;

    public static bool operator <=(CaptureTimestamp a, CaptureTimestamp b) => a.CompareTo(b) <= 0;

    public static bool operator >=(CaptureTimestamp a, CaptureTimestamp b) => a.CompareTo(b) >= 0;

    /// <summary>Seconds, a dot and nine digits of nanoseconds, as <c>tshark -T fields -e frame.time_epoch</c> prints them.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Seconds}.{Nanoseconds:D9}");
}

/// <summary>Which way a packet went, as a pcapng enhanced packet block's <c>epb_flags</c> option says (bits 0-1).</summary>
public enum CaptureDirection
{
    /// <summary>Not recorded (always so for classic pcap).</summary>
    Unknown = 0,

    Inbound = 1,

    Outbound = 2,
}

/// <summary>
/// One packet record of a capture file, as <see cref="CaptureReader.TryReadNext"/> hands it out. <see cref="Data"/>
/// points into the reader's buffer: it is valid until the next call to the reader; copy what must outlive that.
/// </summary>
public readonly ref struct CaptureRecord
{
    public CaptureRecord(CaptureTimestamp timestamp, int interfaceIndex, LinkType linkType, int originalLength, ReadOnlySpan<byte> data, long offset, int section = 0, CaptureDirection direction = CaptureDirection.Unknown)
    {
        Direction = direction;
        Timestamp = timestamp;
        InterfaceIndex = interfaceIndex;
        LinkType = linkType;
        OriginalLength = originalLength;
        Data = data;
        Offset = offset;
        Section = section;
    }

    public CaptureTimestamp Timestamp { get; }

    /// <summary>The interface id inside its pcapng section (0 for classic pcap, and for pcapng simple packet blocks).</summary>
    public int InterfaceIndex { get; }

    /// <summary>The pcapng section the record is in, counting from 0 (always 0 for classic pcap).</summary>
    public int Section { get; }

    public LinkType LinkType { get; }

    /// <summary>Inbound or outbound when a pcapng <c>epb_flags</c> option says so.</summary>
    public CaptureDirection Direction { get; }

    /// <summary>The packet's length on the wire; more than <see cref="Data"/>'s length when the capture cut it to the snap length.</summary>
    public int OriginalLength { get; }

    /// <summary>The captured bytes, link-layer header first.</summary>
    public ReadOnlySpan<byte> Data { get; }

    /// <summary>The byte offset of the record (pcap) or block (pcapng) in the file.</summary>
    public long Offset { get; }

    /// <summary>The capture cut the packet short.</summary>
    public bool IsTruncated => Data.Length < OriginalLength;
}

/// <summary>
/// A malformed or truncated capture file. <see cref="Offset"/> is the byte offset of the record or block that could
/// not be read; every record before it has already been delivered.
/// </summary>
public sealed class CaptureFormatException : FormatException
{
    public CaptureFormatException() { }

    public CaptureFormatException(string message) : base(message) { }

    public CaptureFormatException(string message, Exception inner) : base(message, inner) { }

    public CaptureFormatException(string problem, long offset) : base(problem + " at byte offset " + offset.ToString(CultureInfo.InvariantCulture)) => Offset = offset;

    public long Offset { get; } = -1;
}
