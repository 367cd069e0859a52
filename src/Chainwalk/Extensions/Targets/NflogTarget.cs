using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j NFLOG</c> (struct xt_nflog_info as iptables-nft keeps it).</summary>
public sealed class NflogData : ExtensionData
{
    public ushort Group;

    /// <summary>Bytes to copy to userspace (--nflog-size); meaningful when <see cref="CopyLen"/>.</summary>
    public uint Size;

    /// <summary>XT_NFLOG_F_COPY_LEN: --nflog-size was given.</summary>
    public bool CopyLen;

    /// <summary>Packets to queue before sending to userspace; 0 = the default.</summary>
    public ushort Threshold;

    /// <summary>At most 127 bytes (iptables-nft keeps NF_LOG_PREFIXLEN bytes).</summary>
    public string Prefix = string.Empty;
}

/// <summary>
/// <c>-j NFLOG</c> (libxt_NFLOG.c). iptables-nft turns it into an nftables log statement, so
/// --nflog-range (never worked) is lost and the prefix may be 127 bytes long.
/// </summary>
public sealed class NflogTarget : XtExtension<NflogData>
{
    private const int OGroup = 0, OPrefix = 1, ORange = 2, OSize = 3, OThreshold = 4;

    public override string Name => "NFLOG";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("nflog-group", OGroup),
        new("nflog-prefix", OPrefix),
        new("nflog-range", ORange) { Excludes = 1UL << OSize },
        new("nflog-size", OSize) { Excludes = 1UL << ORange },
        new("nflog-threshold", OThreshold),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, NflogData d)
    {
        string arg = argument!;
        switch (option.Id)
        {
            case OGroup:
                d.Group = (ushort)XtParse.OptUInt(arg, 0, ushort.MaxValue, Name, option.Name);
                break;
            case OPrefix:
                XtParse.OptString(arg, min: 1);
                if (arg.Contains('\n', StringComparison.Ordinal)) throw ctx.Error("Newlines not allowed in --log-prefix");
                d.Prefix = XtParse.TruncateBytes(arg, 127);
                break;
            case ORange:
                // Parsed and range-checked, then dropped on the way through nf_tables.
                XtParse.OptUInt(arg, 0, uint.MaxValue, Name, option.Name);
                break;
            case OSize:
                d.Size = (uint)XtParse.OptUInt(arg, 0, uint.MaxValue, Name, option.Name);
                break;
            case OThreshold:
                d.Threshold = (ushort)XtParse.OptUInt(arg, 0, ushort.MaxValue, Name, option.Name);
                break;
        }
    }

    protected override void FinalCheck(ParseContext ctx, NflogData d)
    {
        if ((d.Given & (1UL << ORange)) != 0)
            ctx.Warn("warn: --nflog-range has never worked and is no longer supported, please use --nflog-size instead");
        if ((d.Given & (1UL << OSize)) != 0) d.CopyLen = true;
    }

    private static void Append(StringBuilder sb, NflogData d, string pfx)
    {
        if (d.Prefix.Length > 0)
        {
            sb.Append(' ').Append(pfx).Append("nflog-prefix");
            XtParse.SaveString(sb, d.Prefix);
        }
        if (d.Group != 0) sb.Append(' ').Append(pfx).Append("nflog-group ").Append(d.Group);
        if (d.CopyLen) sb.Append(' ').Append(pfx).Append("nflog-size ").Append(d.Size);
        if (d.Threshold != 0) sb.Append(' ').Append(pfx).Append("nflog-threshold ").Append(d.Threshold);
    }

    protected override void Save(StringBuilder sb, NflogData d, IpFamily family) => Append(sb, d, "--");

    protected override void Print(StringBuilder sb, NflogData d, IpFamily family, bool numeric) => Append(sb, d, string.Empty);

    /// <summary>
    /// xt_NFLOG.c nflog_tg: the packet is handed to nfnetlink_log group <c>--nflog-group</c> (no listener exists on
    /// the virtual host, so nothing is received; nothing goes to the kernel log either). The explanation records
    /// what would be sent. The packet continues.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, NflogData data)
    {
        var sb = new StringBuilder("NFLOG to group ").Append(TargetEdits.Dec(data.Group));
        if (data.Prefix.Length != 0) sb.Append(" prefix \"").Append(data.Prefix).Append('"');
        if (data.CopyLen) sb.Append(" copying ").Append(TargetEdits.Dec(data.Size)).Append(" bytes");
        if (data.Threshold != 0) sb.Append(" threshold ").Append(TargetEdits.Dec(data.Threshold));
        sb.Append(" (no listener on the virtual host)");
        ctx.Note(sb.ToString());
        return Verdict.Continue;
    }
}
