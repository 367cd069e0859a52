using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m osf</c> (struct xt_osf_info).</summary>
public sealed class OsfData : ExtensionData
{
    /// <summary>The OS genre (at most 31 characters).</summary>
    public string Genre = string.Empty;

    public bool Invert;

    /// <summary>--ttl given (XT_OSF_TTL) and its level 0-2.</summary>
    public bool HasTtl;

    public uint Ttl;

    /// <summary>--log given (XT_OSF_LOG) and its level 0-2.</summary>
    public bool HasLog;

    public uint LogLevel;
}

/// <summary><c>-m osf</c> (libxt_osf.c, xt_osf.c): passive OS fingerprinting; IPv4 and -p tcp only.</summary>
public sealed class OsfMatch : XtExtension<OsfData>
{
    private const int OGenre = 0, OTtl = 1, OLog = 2;

    public override string Name => "osf";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V4;

    public override ushort RequiredProtocol => Protocols.Tcp;

    public override HookMask Hooks => HookMask.Prerouting | HookMask.Input | HookMask.Forward;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("genre", OGenre, OptionArg.Required, OptFlags.Mandatory | OptFlags.Invert),
        new("ttl", OTtl),
        new("log", OLog),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, OsfData d)
    {
        switch (option.Id)
        {
            case OGenre:
                d.Genre = CommentMatch.Truncate(argument!, 31);
                if (invert) d.Invert = true;
                break;
            case OTtl:
                d.Ttl = (uint)XtParse.UIntBad(argument!, 0, 2, Name, option.Name);
                d.HasTtl = true;
                break;
            case OLog:
                d.LogLevel = (uint)XtParse.UIntBad(argument!, 0, 2, Name, option.Name);
                d.HasLog = true;
                break;
        }
    }

    protected override void Save(StringBuilder sb, OsfData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --genre ").Append(d.Genre);
        if (d.HasTtl) sb.Append(" --ttl ").Append(XtParse.Dec(d.Ttl));
        if (d.HasLog) sb.Append(" --log ").Append(XtParse.Dec(d.LogLevel));
    }

    protected override void Print(StringBuilder sb, OsfData d, IpFamily family, bool numeric) =>
        sb.Append(" OS fingerprint match ").Append(d.Invert ? "! " : string.Empty).Append(d.Genre);

    /// <summary>
    /// xt_osf.c / nf_osf.c: no fingerprints are loaded (nfnl_osf), so no packet ever matches; the kernel
    /// ignores the invert flag in the match function, so "! --genre" does not match either.
    /// </summary>
    protected override bool Match(PacketContext ctx, OsfData d) => false;
}
