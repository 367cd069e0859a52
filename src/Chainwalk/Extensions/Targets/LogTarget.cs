using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j LOG</c> (struct xt_log_info).</summary>
public sealed class LogData : ExtensionData
{
    /// <summary>Syslog level 0-7; 4 (warning) by default.</summary>
    public byte Level = LogTarget.DefaultLevel;

    /// <summary>XT_LOG_* bits: 1 tcp-sequence, 2 tcp-options, 4 ip-options, 8 uid, 0x20 macdecode.</summary>
    public byte Flags;

    /// <summary>At most 29 bytes (the rest of a longer --log-prefix is dropped).</summary>
    public string Prefix = string.Empty;
}

/// <summary><c>-j LOG</c> (libxt_LOG.c, xt_LOG.c), the same for IPv4 and IPv6.</summary>
public sealed class LogTarget : XtExtension<LogData>
{
    public const byte DefaultLevel = LogFormat.WarningLevel;
    public const byte TcpSeq = 0x01, TcpOpt = 0x02, IpOpt = 0x04, Uid = 0x08, MacDecode = 0x20;
    private const int OTcpSeq = 0, OTcpOpts = 1, OIpOpts = 2, OUid = 3, OMac = 5, OLevel = 6, OPrefix = 7;

    public override string Name => "LOG";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("log-level", OLevel),
        new("log-prefix", OPrefix),
        new("log-tcp-sequence", OTcpSeq, OptionArg.None),
        new("log-tcp-options", OTcpOpts, OptionArg.None),
        new("log-ip-options", OIpOpts, OptionArg.None),
        new("log-uid", OUid, OptionArg.None),
        new("log-macdecode", OMac, OptionArg.None),
    ];

    /// <summary>XTTYPE_SYSLOGLEVEL names (sorted as libxtables keeps them).</summary>
    private static readonly (string Name, byte Level)[] LevelNames =
    [
        ("alert", 1), ("crit", 2), ("debug", 7), ("emerg", 0), ("error", 3), ("info", 6), ("notice", 5), ("panic", 0), ("warning", 4),
    ];

    /// <summary>glibc's prioritynames: the first name of each level, as -L prints it.</summary>
    private static readonly string[] PrintNames = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"];

    /// <summary>Parses a syslog level: a number 0-7 or a name.</summary>
    public static byte ParseLevel(string text)
    {
        if (XtParse.StrToUL(text, 0, 7, out ulong n)) return (byte)n;
        foreach (var (name, level) in LevelNames)
        {
            if (string.Equals(name, text, StringComparison.Ordinal)) return level;
        }
        throw XtablesException.Param($"log level \"{text}\" unknown\n");
    }

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, LogData d)
    {
        switch (option.Id)
        {
            case OLevel:
                d.Level = ParseLevel(argument!);
                break;
            case OPrefix:
                d.Prefix = XtParse.OptString(argument!, min: 1, size: 30);
                if (argument!.Contains('\n', StringComparison.Ordinal)) throw ctx.Error("Newlines not allowed in --log-prefix");
                break;
            default:
                d.Flags |= (byte)(1 << option.Id);
                break;
        }
    }

    protected override void Save(StringBuilder sb, LogData d, IpFamily family)
    {
        if (d.Prefix.Length > 0)
        {
            sb.Append(" --log-prefix");
            XtParse.SaveString(sb, d.Prefix);
        }
        if (d.Level != DefaultLevel) sb.Append(" --log-level ").Append(d.Level);
        if ((d.Flags & TcpSeq) != 0) sb.Append(" --log-tcp-sequence");
        if ((d.Flags & TcpOpt) != 0) sb.Append(" --log-tcp-options");
        if ((d.Flags & IpOpt) != 0) sb.Append(" --log-ip-options");
        if ((d.Flags & Uid) != 0) sb.Append(" --log-uid");
        if ((d.Flags & MacDecode) != 0) sb.Append(" --log-macdecode");
    }

    protected override void Print(StringBuilder sb, LogData d, IpFamily family, bool numeric)
    {
        sb.Append(" LOG");
        if (numeric)
        {
            sb.Append(" flags ").Append(d.Flags).Append(" level ").Append(d.Level);
        }
        else
        {
            if (d.Level < PrintNames.Length) sb.Append(" level ").Append(PrintNames[d.Level]);
            else sb.Append(" UNKNOWN level ").Append(d.Level);
            if ((d.Flags & TcpSeq) != 0) sb.Append(" tcp-sequence");
            if ((d.Flags & TcpOpt) != 0) sb.Append(" tcp-options");
            if ((d.Flags & IpOpt) != 0) sb.Append(" ip-options");
            if ((d.Flags & Uid) != 0) sb.Append(" uid");
            if ((d.Flags & MacDecode) != 0) sb.Append(" macdecode");
            if ((d.Flags & ~0x2F) != 0) sb.Append(" unknown-flags");
        }
        if (d.Prefix.Length > 0) sb.Append(" prefix \"").Append(d.Prefix).Append('"');
    }

    /// <summary>
    /// xt_LOG.c log_tg: the nf_log_syslog line (see <see cref="LogFormat"/>) with the --log-* flags and the prefix,
    /// at syslog priority --log-level (kept out of the text: it is the KERN_SOH level, not part of the line).
    /// The real kernel logs this only in the initial namespace unless net.netfilter.nf_log_all_netns is 1;
    /// Chainwalk's host is such a namespace of its own and always logs. The packet continues.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, LogData data)
    {
        ctx.Log(LogFormat.Line(ctx, data.Prefix, (LogFormat.Flags)(data.Flags & 0x2f)), data.Level);
        return Verdict.Continue;
    }
}
