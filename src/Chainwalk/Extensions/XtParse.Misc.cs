using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions;

/// <summary>Shared helpers of the comment/limit/recent/... group: string quoting, atoi, rates.</summary>
public static partial class XtParse
{
    /// <summary>xtables_save_string: bare when only [A-Za-z0-9_-], else double-quoted with " \ ' escaped.</summary>
    public static void SaveString(StringBuilder sb, ReadOnlySpan<char> value)
    {
        sb.Append(' ');
        bool plain = value.Length > 0;
        foreach (char c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '_' || c == '-'))
            {
                plain = false;
                break;
            }
        }
        if (plain)
        {
            sb.Append(value);
            return;
        }
        sb.Append('"');
        foreach (char c in value)
        {
            if (c is '"' or '\\' or '\'') sb.Append('\\');
            sb.Append(c);
        }
        sb.Append('"');
    }

    /// <summary>C atoi: leading white space, a sign, decimal digits; the long result truncated to int.</summary>
    public static int Atoi(ReadOnlySpan<char> text)
    {
        int i = 0;
        while (i < text.Length && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r'))) i++;
        bool neg = false;
        if (i < text.Length && (text[i] == '+' || text[i] == '-'))
        {
            neg = text[i] == '-';
            i++;
        }
        long acc = 0;
        bool overflow = false;
        while (i < text.Length && char.IsAsciiDigit(text[i]))
        {
            if (acc > (long.MaxValue - (text[i] - '0')) / 10) overflow = true;
            else acc = acc * 10 + (text[i] - '0');
            i++;
        }
        if (overflow) return neg ? unchecked((int)long.MinValue) : unchecked((int)long.MaxValue);
        return unchecked((int)(neg ? -acc : acc));
    }

    /// <summary>strtod over the whole string (as xtables' float options and libxt_statistic use it).</summary>
    public static bool TryStrtod(string text, out double value)
    {
        value = 0;
        string t = text.TrimStart(' ', '\t', '\n', '\v', '\f', '\r');
        if (t.Length == 0) return false;
        if (t.Contains("0x", StringComparison.OrdinalIgnoreCase) || t.Contains("inf", StringComparison.OrdinalIgnoreCase)
            || t.Contains("nan", StringComparison.OrdinalIgnoreCase))
        {
            return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && !t.EndsWith('.');
        }
        return double.TryParse(t, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent,
            CultureInfo.InvariantCulture, out value);
    }

    /// <summary>An unsigned integer "bad value" check with the xtoptions message, for options where 1.8.9 gives only that text.</summary>
    public static ulong UIntBad(string text, ulong min, ulong max, string ext, string option, int numberBase = 0)
    {
        if (NumberParsing.TryParseCUnsigned(text, max, out ulong v, min, numberBase)) return v;
        throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", or out of range ({min}-{max}).\n");
    }
}


public static partial class XtParse
{
    /// <summary>The prefix length iptables 1.8.9 reports for a mask that is not a run of ones (uint8 -1).</summary>
    public const int NonContiguousPrefix = 255;

    /// <summary>
    /// XTTYPE_PLEN as 1.8.9 parses it: a prefix length (0-32 or 0-128), or a numeric address taken as a
    /// netmask, giving its prefix length or <see cref="NonContiguousPrefix"/> when it is not contiguous.
    /// </summary>
    public static int PrefixOrMask(string text, IpFamily family, string ext, string option)
    {
        int max = family == IpFamily.V4 ? 32 : 128;
        if (NumberParsing.TryParseCUnsigned(text, (ulong)max, out ulong n)) return (int)n;
        if (IpNet.TryParseNumeric(text, family, out UInt128 m))
        {
            UInt128 full = IpNet.FullMask(family);
            int len = IpNet.PopCount(m);
            UInt128 expect = len == 0 ? UInt128.Zero : (full << (max - len)) & full;
            return m == expect ? len : NonContiguousPrefix;
        }
        throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", neither a valid network mask nor valid CIDR (0-{max}).\n");
    }
}
