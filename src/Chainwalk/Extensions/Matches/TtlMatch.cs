namespace Chainwalk.Extensions.Matches;

/// <summary><c>-m ttl --ttl-eq|--ttl-lt|--ttl-gt N</c>, IPv4 only (libipt_ttl.c, ipt_ttl.c).</summary>
public sealed class TtlMatch : HopLimitMatchBase
{
    public override string Name => "ttl";

    public override FamilyMask Families => FamilyMask.V4;

    protected override string Word => "ttl";

    // 1.8.9's text lacks the closing quote after --ttl-gt.
    protected override string MissingMessage => "TTL match: You must specify one of `--ttl-eq', `--ttl-lt', `--ttl-gt";
}
