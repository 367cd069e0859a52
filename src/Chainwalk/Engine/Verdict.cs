namespace Chainwalk.Engine;

/// <summary>What a rule's target tells the chain walker (the kernel's NF_* verdicts and XT_CONTINUE / XT_RETURN).</summary>
public enum VerdictKind : byte
{
    /// <summary>XT_CONTINUE: go on with the next rule (MARK, LOG, TTL …).</summary>
    Continue,
    Accept,
    Drop,

    /// <summary>NF_QUEUE: handed to a userspace queue (<see cref="Verdict.QueueNumber"/>).</summary>
    Queue,

    /// <summary>NF_STOLEN: the target took the packet (e.g. SYNPROXY answering itself).</summary>
    Stolen,

    /// <summary>XT_RETURN: back to the calling chain (or the policy in a built-in chain).</summary>
    Return,
}

/// <summary>A target's verdict.</summary>
/// <remarks>
/// One 32-bit value (kind in the low byte, the bypass flag in bit 8, the queue number in the high half): a verdict made
/// in place is one store and returned in a register whole. As three fields (6 bytes: a padded ushort between two bytes) a
/// verdict made in place was narrow stores read back by one wider load, which store forwarding cannot serve: a stall at
/// every walk's return (perf of newloop 1k, session 9: 5 % of WalkFlat's own samples on that load).
/// </remarks>
public readonly record struct Verdict
{
    private readonly uint _bits;

    public Verdict(VerdictKind Kind, ushort QueueNumber = 0, bool QueueBypass = false) =>
        _bits = (byte)Kind | (QueueBypass ? 0x100u : 0u) | (uint)QueueNumber << 16;

    public VerdictKind Kind
    {
        get => (VerdictKind)(byte)_bits;
        init => _bits = (_bits & ~0xFFu) | (byte)value;
    }

    public ushort QueueNumber
    {
        get => (ushort)(_bits >> 16);
        init => _bits = (_bits & 0xFFFFu) | (uint)value << 16;
    }

    public bool QueueBypass
    {
        get => (_bits & 0x100u) != 0;
        init => _bits = value ? _bits | 0x100u : _bits & ~0x100u;
    }

    public void Deconstruct(out VerdictKind Kind, out ushort QueueNumber, out bool QueueBypass) =>
        (Kind, QueueNumber, QueueBypass) = (this.Kind, this.QueueNumber, this.QueueBypass);

    public static Verdict Continue => new(VerdictKind.Continue);
    public static Verdict Accept => new(VerdictKind.Accept);
    public static Verdict Drop => new(VerdictKind.Drop);
    public static Verdict Stolen => new(VerdictKind.Stolen);
    public static Verdict Return => new(VerdictKind.Return);

    public static Verdict Queue(ushort number, bool bypass = false) => new(VerdictKind.Queue, number, bypass);

    public override string ToString() => Kind switch
    {
        VerdictKind.Continue => "CONTINUE",
        VerdictKind.Accept => "ACCEPT",
        VerdictKind.Drop => "DROP",
        VerdictKind.Queue => "QUEUE " + QueueNumber.ToString(System.Globalization.CultureInfo.InvariantCulture),
        VerdictKind.Stolen => "STOLEN",
        _ => "RETURN",
    };
}

/// <summary>Thrown when a rule uses an extension whose evaluation Chainwalk does not have.</summary>
public sealed class NotEvaluatedException(string extension)
    : Exception($"chainwalk: the {extension} extension cannot be evaluated on packets")
{
    public string Extension { get; } = extension;
}
