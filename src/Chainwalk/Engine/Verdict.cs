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
/// Eight bytes (its fields take five): the JIT copies a six-byte struct as a four-byte and a two-byte move, and a verdict
/// stored that way and then read whole (returned, passed on) cannot be forwarded from the store buffer: a stall of some
/// ten cycles at each hook's table (seen in <c>Netfilter.RunHook</c>'s listing). At eight bytes every copy is one move.
/// </remarks>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 8)]
public readonly record struct Verdict(VerdictKind Kind, ushort QueueNumber = 0, bool QueueBypass = false)
{
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
