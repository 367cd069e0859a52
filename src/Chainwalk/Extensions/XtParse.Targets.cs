using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions;

/// <summary>
/// The libxtables 1.8.9 option types the target extensions use (XTTYPE_UINT*, XTTYPE_MARKMASK32,
/// XTTYPE_STRING, XTTYPE_UINT16RC) with the exact 1.8.9 messages, and xtables_save_string.
/// </summary>
public static partial class XtParse
{
    /// <summary>
    /// xtables_strtoul_base with an end pointer: optional white space and '+', no '-', at least one digit,
    /// no overflow, within [min, max]. <paramref name="used"/> is the number of characters consumed.
    /// </summary>
    public static bool StrToULPrefix(ReadOnlySpan<char> text, ulong min, ulong max, out ulong value, out int used, int numberBase = 0)
    {
        value = 0;
        used = 0;
        int i = 0;
        while (i < text.Length && char.IsWhiteSpace(text[i])) i++;
        if (i < text.Length && text[i] == '-') return false;
        used = NumberParsing.ParseCPrefix(text, numberBase, out value, out bool overflow);
        if (used == 0) return false;
        return !overflow && value >= min && value <= max;
    }

    /// <summary>xtables_strtoul_base without an end pointer: the whole text must be the number.</summary>
    public static bool StrToUL(ReadOnlySpan<char> text, ulong min, ulong max, out ulong value, int numberBase = 0) =>
        StrToULPrefix(text, min, max, out value, out int used, numberBase) && used == text.Length;

    /// <summary>XTTYPE_UINT8/16/32/64 (xtopt_parse_int) with its 1.8.9 message.</summary>
    public static ulong OptUInt(string text, ulong min, ulong max, string ext, string option)
    {
        if (StrToUL(text, min, max, out ulong v)) return v;
        throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", or out of range ({min}-{max}).\n");
    }

    /// <summary>XTTYPE_MARKMASK32 (xtables_parse_mark_mask): "value[/mask]", mask defaulting to all ones.</summary>
    public static (uint Value, uint Mask) OptMarkMask(string text, string ext, string option)
    {
        string bad = $"{ext}: bad integer value for option \"--{option}\", or out of range.\n";
        string garbage = $"{ext}: trailing garbage after value for option \"--{option}\".\n";
        if (!StrToULPrefix(text, 0, uint.MaxValue, out ulong value, out int used)) throw XtablesException.Param(bad);
        if (used == text.Length) return ((uint)value, uint.MaxValue);
        if (text[used] != '/') throw XtablesException.Param(garbage);
        ReadOnlySpan<char> rest = text.AsSpan(used + 1);
        if (!StrToULPrefix(rest, 0, uint.MaxValue, out ulong mask, out int used2)) throw XtablesException.Param(bad);
        if (used2 != rest.Length) throw XtablesException.Param(garbage);
        return ((uint)value, (uint)mask);
    }

    /// <summary>
    /// XTTYPE_STRING (xtopt_parse_string): the entry's min/max length checks, then the copy into a
    /// buffer of <paramref name="size"/> bytes (0 = not stored), which silently truncates to size - 1.
    /// </summary>
    public static string OptString(string text, int min = 0, int max = 0, int size = 0)
    {
        int z = Encoding.UTF8.GetByteCount(text);
        if (min != 0 && z < min) throw XtablesException.Param($"Argument must have a minimum length of {min} characters\n");
        if (max != 0 && z > max) throw XtablesException.Param($"Argument must have a maximum length of {max} characters\n");
        return size > 0 ? TruncateBytes(text, size - 1) : text;
    }

    /// <summary>The longest prefix of <paramref name="text"/> of at most <paramref name="bytes"/> UTF-8 bytes.</summary>
    public static string TruncateBytes(string text, int bytes)
    {
        if (Encoding.UTF8.GetByteCount(text) <= bytes) return text;
        byte[] b = Encoding.UTF8.GetBytes(text);
        return Encoding.UTF8.GetString(b, 0, bytes);
    }

    /// <summary>
    /// XTTYPE_UINT16RC of 1.8.9 (xtopt_parse_mint): "a[:b]", empty parts defaulting to 0 and 65535; 1.8.9
    /// applies neither the entry's max nor an ordering of the parts. Returns the values (one or two).
    /// </summary>
    public static ushort[] OptUInt16Range(string text, string ext, string option)
    {
        const ulong lmax = ushort.MaxValue;
        const ulong lmin = 0;
        var vals = new List<ushort>(2);
        int pos = 0;
        while (true)
        {
            if (vals.Count == 2) throw XtablesException.Param($"{ext}: Too many components for option \"--{option}\" (max: 2)\n");
            int end;
            ulong value;
            if (pos >= text.Length || text[pos] == ':')
            {
                end = pos;
                value = vals.Count == 1 ? lmax : lmin;
            }
            else
            {
                ReadOnlySpan<char> arg = text.AsSpan(pos);
                if (!StrToULPrefix(arg, lmin, lmax, out value, out int used))
                {
                    throw XtablesException.Param($"{ext}: bad value for option \"--{option}\" near \"{arg}\", or out of range ({lmin}-{lmax}).\n");
                }
                end = pos + used;
                if (end < text.Length && text[end] != ':')
                {
                    throw XtablesException.Param($"{ext}: Argument to \"--{option}\" has unexpected characters near \"{text.AsSpan(end)}\".\n");
                }
            }
            vals.Add((ushort)value);
            if (end >= text.Length) break;
            pos = end + 1;
        }
        return [.. vals];
    }

    /// <summary>sscanf "%x": white space, an optional sign, an optional 0x, hex digits; the value wraps to 32 bits.</summary>
    public static bool ScanHex(ReadOnlySpan<char> text, ref int pos, out uint value)
    {
        value = 0;
        int i = pos;
        while (i < text.Length && char.IsWhiteSpace(text[i])) i++;
        bool neg = false;
        if (i < text.Length && (text[i] == '+' || text[i] == '-'))
        {
            neg = text[i] == '-';
            i++;
        }
        if (i + 2 < text.Length && text[i] == '0' && (text[i + 1] is 'x' or 'X') && char.IsAsciiHexDigit(text[i + 2])) i += 2;
        int start = i;
        ulong acc = 0;
        bool overflow = false;
        while (i < text.Length && char.IsAsciiHexDigit(text[i]))
        {
            acc = (acc << 4) + (ulong)Uri.FromHex(text[i]);
            if (acc > uint.MaxValue) overflow = true;
            i++;
        }
        if (i == start) return false;
        // glibc converts with strtoul (64-bit unsigned long): overflow saturates, '-' negates; the store truncates.
        ulong v = overflow && acc > uint.MaxValue ? (i - start > 16 ? ulong.MaxValue : acc) : acc;
        if (neg) v = unchecked(0 - v);
        value = unchecked((uint)v);
        pos = i;
        return true;
    }
}
