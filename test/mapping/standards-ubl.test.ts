import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Decimal } from 'decimal.js';
import fc from 'fast-check';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { parseDocument, type YAMLMap, type YAMLSeq } from 'yaml';
import { BridgeError } from '../../src/errors.ts';
import { annotation, fixture, mappingFrom } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MAPPING = join(ROOT, 'mappings', 'ubl-invoice.yaml');
const EXPECTED = join(ROOT, 'mappings', 'expected', 'ubl-invoice');
const NS = {
  invoice: 'urn:oasis:names:specification:ubl:schema:xsd:Invoice-2',
  cac: 'urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2',
  cbc: 'urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2',
};

/**
 * The UBL 2.1 content models (from the OASIS XSDs) of the elements the mapping writes: children in schema
 * order; `!` required, `*` repeatable, `+` both. Tests walk the output against these, element by element.
 */
const MODELS: Record<string, string[]> = {
  Invoice: [
    'ext:UBLExtensions',
    'cbc:UBLVersionID',
    'cbc:CustomizationID!',
    'cbc:ProfileID',
    'cbc:ProfileExecutionID',
    'cbc:ID!',
    'cbc:CopyIndicator',
    'cbc:UUID',
    'cbc:IssueDate!',
    'cbc:IssueTime',
    'cbc:DueDate',
    'cbc:InvoiceTypeCode!',
    'cbc:Note*',
    'cbc:TaxPointDate',
    'cbc:DocumentCurrencyCode!',
    'cbc:TaxCurrencyCode',
    'cbc:PricingCurrencyCode',
    'cbc:PaymentCurrencyCode',
    'cbc:PaymentAlternativeCurrencyCode',
    'cbc:AccountingCostCode',
    'cbc:AccountingCost',
    'cbc:LineCountNumeric',
    'cbc:BuyerReference',
    'cac:InvoicePeriod*',
    'cac:OrderReference',
    'cac:BillingReference*',
    'cac:DespatchDocumentReference*',
    'cac:ReceiptDocumentReference*',
    'cac:StatementDocumentReference*',
    'cac:OriginatorDocumentReference*',
    'cac:ContractDocumentReference*',
    'cac:AdditionalDocumentReference*',
    'cac:ProjectReference*',
    'cac:Signature*',
    'cac:AccountingSupplierParty!',
    'cac:AccountingCustomerParty!',
    'cac:PayeeParty',
    'cac:BuyerCustomerParty',
    'cac:SellerSupplierParty',
    'cac:TaxRepresentativeParty',
    'cac:Delivery*',
    'cac:DeliveryTerms',
    'cac:PaymentMeans*',
    'cac:PaymentTerms*',
    'cac:PrepaidPayment*',
    'cac:AllowanceCharge*',
    'cac:TaxExchangeRate',
    'cac:PricingExchangeRate',
    'cac:PaymentExchangeRate',
    'cac:PaymentAlternativeExchangeRate',
    'cac:TaxTotal+',
    'cac:WithholdingTaxTotal*',
    'cac:LegalMonetaryTotal!',
    'cac:InvoiceLine+',
  ],
  'cac:OrderReference': [
    'cbc:ID!',
    'cbc:SalesOrderID',
    'cbc:CopyIndicator',
    'cbc:UUID',
    'cbc:IssueDate',
    'cbc:IssueTime',
    'cbc:CustomerReference',
    'cbc:OrderTypeCode',
    'cac:DocumentReference',
  ],
  'cac:AccountingSupplierParty': [
    'cbc:CustomerAssignedAccountID',
    'cbc:AdditionalAccountID*',
    'cbc:DataSendingCapability',
    'cac:Party',
    'cac:DespatchContact',
    'cac:AccountingContact',
    'cac:SellerContact',
  ],
  'cac:AccountingCustomerParty': [
    'cbc:CustomerAssignedAccountID',
    'cbc:SupplierAssignedAccountID',
    'cbc:AdditionalAccountID*',
    'cac:Party',
    'cac:DeliveryContact',
    'cac:AccountingContact',
    'cac:BuyerContact',
  ],
  'cac:Party': [
    'cbc:MarkCareIndicator',
    'cbc:MarkAttentionIndicator',
    'cbc:WebsiteURI',
    'cbc:LogoReferenceID',
    'cbc:EndpointID',
    'cbc:IndustryClassificationCode',
    'cac:PartyIdentification*',
    'cac:PartyName*',
    'cac:Language',
    'cac:PostalAddress',
    'cac:PhysicalLocation',
    'cac:PartyTaxScheme*',
    'cac:PartyLegalEntity*',
    'cac:Contact',
    'cac:Person*',
    'cac:AgentParty',
    'cac:ServiceProviderParty*',
    'cac:PowerOfAttorney*',
    'cac:FinancialAccount',
  ],
  'cac:PostalAddress': [
    'cbc:ID',
    'cbc:AddressTypeCode',
    'cbc:AddressFormatCode',
    'cbc:Postbox',
    'cbc:Floor',
    'cbc:Room',
    'cbc:StreetName',
    'cbc:AdditionalStreetName',
    'cbc:BlockName',
    'cbc:BuildingName',
    'cbc:BuildingNumber',
    'cbc:InhouseMail',
    'cbc:Department',
    'cbc:MarkAttention',
    'cbc:MarkCare',
    'cbc:PlotIdentification',
    'cbc:CitySubdivisionName',
    'cbc:CityName',
    'cbc:PostalZone',
    'cbc:CountrySubentity',
    'cbc:CountrySubentityCode',
    'cbc:Region',
    'cbc:District',
    'cbc:TimezoneOffset',
    'cac:AddressLine*',
    'cac:Country',
    'cac:LocationCoordinate*',
  ],
  'cac:Country': ['cbc:IdentificationCode', 'cbc:Name'],
  'cac:PartyTaxScheme': [
    'cbc:RegistrationName',
    'cbc:CompanyID',
    'cbc:TaxLevelCode',
    'cbc:ExemptionReasonCode',
    'cbc:ExemptionReason*',
    'cac:RegistrationAddress',
    'cac:TaxScheme!',
  ],
  'cac:PartyLegalEntity': [
    'cbc:RegistrationName',
    'cbc:CompanyID',
    'cbc:RegistrationDate',
    'cbc:RegistrationExpirationDate',
    'cbc:CompanyLegalFormCode',
    'cbc:CompanyLegalForm',
    'cbc:SoleProprietorshipIndicator',
  ],
  'cac:TaxScheme': ['cbc:ID', 'cbc:Name', 'cbc:TaxTypeCode', 'cbc:CurrencyCode', 'cac:JurisdictionRegionAddress*'],
  'cac:PaymentMeans': [
    'cbc:ID',
    'cbc:PaymentMeansCode!',
    'cbc:PaymentDueDate',
    'cbc:PaymentChannelCode',
    'cbc:InstructionID',
    'cbc:InstructionNote*',
    'cbc:PaymentID*',
    'cac:CardAccount',
    'cac:PayerFinancialAccount',
    'cac:PayeeFinancialAccount',
    'cac:CreditAccount',
    'cac:PaymentMandate',
    'cac:TradeFinancing',
  ],
  'cac:PayeeFinancialAccount': [
    'cbc:ID',
    'cbc:Name',
    'cbc:AliasName',
    'cbc:AccountTypeCode',
    'cbc:AccountFormatCode',
    'cbc:CurrencyCode',
    'cbc:PaymentNote*',
    'cac:FinancialInstitutionBranch',
    'cac:Country',
  ],
  'cac:TaxTotal': [
    'cbc:TaxAmount!',
    'cbc:RoundingAmount',
    'cbc:TaxEvidenceIndicator',
    'cbc:TaxIncludedIndicator',
    'cac:TaxSubtotal*',
  ],
  'cac:TaxSubtotal': [
    'cbc:TaxableAmount',
    'cbc:TaxAmount!',
    'cbc:CalculationSequenceNumeric',
    'cbc:TransactionCurrencyTaxAmount',
    'cbc:Percent',
    'cbc:BaseUnitMeasure',
    'cbc:PerUnitAmount',
    'cbc:TierRange',
    'cbc:TierRatePercent',
    'cac:TaxCategory!',
  ],
  'cac:TaxCategory': [
    'cbc:ID',
    'cbc:Name',
    'cbc:Percent',
    'cbc:BaseUnitMeasure',
    'cbc:PerUnitAmount',
    'cbc:TaxExemptionReasonCode',
    'cbc:TaxExemptionReason*',
    'cbc:TierRange',
    'cbc:TierRatePercent',
    'cac:TaxScheme!',
  ],
  'cac:LegalMonetaryTotal': [
    'cbc:LineExtensionAmount',
    'cbc:TaxExclusiveAmount',
    'cbc:TaxInclusiveAmount',
    'cbc:AllowanceTotalAmount',
    'cbc:ChargeTotalAmount',
    'cbc:PrepaidAmount',
    'cbc:PayableRoundingAmount',
    'cbc:PayableAmount!',
    'cbc:PayableAlternativeAmount',
  ],
  'cac:InvoiceLine': [
    'cbc:ID!',
    'cbc:UUID',
    'cbc:Note*',
    'cbc:InvoicedQuantity',
    'cbc:LineExtensionAmount!',
    'cbc:TaxPointDate',
    'cbc:AccountingCostCode',
    'cbc:AccountingCost',
    'cbc:PaymentPurposeCode',
    'cbc:FreeOfChargeIndicator',
    'cac:InvoicePeriod*',
    'cac:OrderLineReference*',
    'cac:DespatchLineReference*',
    'cac:ReceiptLineReference*',
    'cac:BillingReference*',
    'cac:DocumentReference*',
    'cac:PricingReference',
    'cac:OriginatorParty',
    'cac:Delivery*',
    'cac:PaymentTerms*',
    'cac:AllowanceCharge*',
    'cac:TaxTotal*',
    'cac:WithholdingTaxTotal*',
    'cac:Item!',
    'cac:Price',
    'cac:DeliveryTerms',
    'cac:SubInvoiceLine*',
    'cac:ItemPriceExtension',
  ],
  'cac:Item': [
    'cbc:Description*',
    'cbc:PackQuantity',
    'cbc:PackSizeNumeric',
    'cbc:CatalogueIndicator',
    'cbc:Name',
    'cbc:HazardousRiskIndicator',
    'cbc:AdditionalInformation*',
    'cbc:Keyword*',
    'cbc:BrandName*',
    'cbc:ModelName*',
    'cac:BuyersItemIdentification',
    'cac:SellersItemIdentification',
    'cac:ManufacturersItemIdentification*',
    'cac:StandardItemIdentification',
    'cac:CatalogueItemIdentification',
    'cac:AdditionalItemIdentification*',
    'cac:CatalogueDocumentReference',
    'cac:ItemSpecificationDocumentReference*',
    'cac:OriginCountry',
    'cac:CommodityClassification*',
    'cac:TransactionConditions*',
    'cac:HazardousItem*',
    'cac:ClassifiedTaxCategory*',
  ],
  'cac:SellersItemIdentification': ['cbc:ID!', 'cbc:ExtendedID', 'cbc:BarcodeSymbologyID'],
  'cac:ClassifiedTaxCategory': [
    'cbc:ID',
    'cbc:Name',
    'cbc:Percent',
    'cbc:BaseUnitMeasure',
    'cbc:PerUnitAmount',
    'cbc:TaxExemptionReasonCode',
    'cbc:TaxExemptionReason*',
    'cbc:TierRange',
    'cbc:TierRatePercent',
    'cac:TaxScheme!',
  ],
  'cac:Price': [
    'cbc:PriceAmount!',
    'cac:BaseQuantity',
    'cbc:PriceChangeReason*',
    'cbc:PriceTypeCode',
    'cbc:PriceType',
    'cbc:OrderableUnitFactorRate',
    'cac:ValidityPeriod*',
    'cac:PriceList',
    'cac:AllowanceCharge*',
  ],
};

/** fast-xml-parser's preserveOrder form: one key for the element name, `:@` for attributes. */
type OrderedNode = Record<string, unknown> & { ':@'?: Record<string, string> };
interface Element {
  name: string;
  attributes: Record<string, string>;
  children: Element[];
  text: string;
}

function toElement(node: OrderedNode): Element {
  const name = Object.keys(node).find((key) => key !== ':@') as string;
  const content = (node[name] ?? []) as OrderedNode[];
  const attributes = Object.fromEntries(
    Object.entries(node[':@'] ?? {}).map(([key, value]) => [key.replace(/^@_/, ''), value]),
  );
  return {
    name,
    attributes,
    children: content.filter((child) => !('#text' in child)).map(toElement),
    text: content
      .filter((child) => '#text' in child)
      .map((child) => String(child['#text']))
      .join(''),
  };
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
});

function parseUbl(xml: string): Element {
  expect(XMLValidator.validate(xml)).toBe(true);
  const nodes = parser.parse(xml) as OrderedNode[];
  const roots = nodes.map(toElement).filter((e) => e.name !== '?xml');
  expect(roots).toHaveLength(1);
  return roots[0] as Element;
}

/** Every element with a model: children known, in schema order, required ones present, singletons once. Returns the violations. */
function modelProblems(element: Element, path: string, problems: string[] = []): string[] {
  const model = MODELS[element.name];
  if (!model) {
    if (element.children.length > 0) problems.push(`${path} is a basic component but has child elements`);
    if (element.text === '') problems.push(`${path} is written without content`);
    return problems;
  }
  const names = model.map((entry) => entry.replace(/[!*+]$/, ''));
  let last = -1;
  const seen = new Map<string, number>();
  for (const c of element.children) {
    const index = names.indexOf(c.name);
    if (index < 0) problems.push(`${path}/${c.name} is not a child of ${element.name} in UBL 2.1`);
    else if (index < last) problems.push(`${path}/${c.name} is out of the schema order (after ${names[last]})`);
    last = Math.max(last, index);
    seen.set(c.name, (seen.get(c.name) ?? 0) + 1);
  }
  for (const entry of model) {
    const name = entry.replace(/[!*+]$/, '');
    if (/[!+]$/.test(entry) && !seen.has(name)) problems.push(`${path} needs ${name}`);
    if (!/[*+]$/.test(entry) && (seen.get(name) ?? 0) > 1) problems.push(`${path} has ${name} more than once`);
  }
  for (const [i, c] of element.children.entries()) modelProblems(c, `${path}/${c.name}[${i + 1}]`, problems);
  return problems;
}

const child = (element: Element | undefined, name: string): Element | undefined =>
  element?.children.find((c) => c.name === name);
const all = (element: Element | undefined, name: string): Element[] =>
  element?.children.filter((c) => c.name === name) ?? [];
const amount = (element: Element | undefined): Decimal => new Decimal(element?.text ?? 'NaN');
const sum = (values: Decimal[]): Decimal => values.reduce((a, b) => a.plus(b), new Decimal(0));

function everyElement(element: Element, visit: (e: Element) => void): void {
  visit(element);
  for (const c of element.children) everyElement(c, visit);
}

/** The UBL 2.1 invoice structure, namespaces and amount consistency; returns the parsed root. */
function checkUbl(xml: string): Element {
  const root = parseUbl(xml);
  expect(root.name).toBe('Invoice');
  expect(root.attributes).toEqual({ xmlns: NS.invoice, 'xmlns:cac': NS.cac, 'xmlns:cbc': NS.cbc });
  const problems = modelProblems(root, 'Invoice');
  const currency = child(root, 'cbc:DocumentCurrencyCode')?.text;
  expect(currency).toMatch(/^[A-Z]{3}$/);
  everyElement(root, (e) => {
    if (e !== root && !/^(cac|cbc):/.test(e.name))
      problems.push(`${e.name} is in neither the cac nor the cbc namespace`);
    if (e.name.endsWith('Amount')) {
      if (Object.keys(e.attributes).join() !== 'currencyID' || e.attributes.currencyID !== currency)
        problems.push(`${e.name} ${JSON.stringify(e.attributes)} does not carry currencyID="${currency}"`);
      if (!/^-?\d+(\.\d+)?$/.test(e.text)) problems.push(`${e.name} "${e.text}" is not a decimal`);
    }
  });
  expect(problems, problems.join('; ')).toEqual([]);
  expect(child(root, 'cbc:CustomizationID')?.text).toBe('urn:cen.eu:en16931:2017');
  expect(child(root, 'cbc:IssueDate')?.text).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  const lines = all(root, 'cac:InvoiceLine');
  expect(lines.map((line) => child(line, 'cbc:ID')?.text)).toEqual(lines.map((_, i) => String(i + 1)));
  const totals = child(root, 'cac:LegalMonetaryTotal');
  const lineTotal = sum(lines.map((line) => amount(child(line, 'cbc:LineExtensionAmount'))));
  expect(
    lineTotal.equals(amount(child(totals, 'cbc:LineExtensionAmount'))),
    'line net amounts sum to LegalMonetaryTotal/LineExtensionAmount',
  ).toBe(true);
  const taxTotal = child(root, 'cac:TaxTotal');
  const subtotals = all(taxTotal, 'cac:TaxSubtotal');
  if (subtotals.length > 0)
    expect(
      sum(subtotals.map((s) => amount(child(s, 'cbc:TaxAmount')))).equals(amount(child(taxTotal, 'cbc:TaxAmount'))),
    ).toBe(true);
  const exclusive = amount(child(totals, 'cbc:TaxExclusiveAmount'));
  expect(
    exclusive.plus(amount(child(taxTotal, 'cbc:TaxAmount'))).equals(amount(child(totals, 'cbc:TaxInclusiveAmount'))),
    'TaxInclusive = TaxExclusive + TaxTotal',
  ).toBe(true);
  expect(amount(child(totals, 'cbc:PayableAmount')).equals(amount(child(totals, 'cbc:TaxInclusiveAmount')))).toBe(true);
  return root;
}

function variant(change?: (doc: ReturnType<typeof parseDocument>) => void) {
  const doc = parseDocument(readFileSync(MAPPING, 'utf8'));
  doc.delete('tests');
  change?.(doc);
  return mappingFrom(String(doc), 'ubl-variant');
}
const shipped = variant();

describe('ubl-invoice: UBL 2.1 invoice structure, checked with an XML parser', () => {
  it('every stored expected file is a UBL 2.1 invoice in schema order with consistent amounts', () => {
    const files = readdirSync(EXPECTED).sort();
    expect(files).toEqual(['invoice.xml', 'tricky-characters.xml']);
    for (const file of files) {
      const root = checkUbl(readFileSync(join(EXPECTED, file), 'utf8'));
      expect(all(child(root, 'cac:TaxTotal'), 'cac:TaxSubtotal').length).toBeGreaterThan(0);
      const totals = child(root, 'cac:LegalMonetaryTotal');
      expect(
        amount(child(totals, 'cbc:LineExtensionAmount')).equals(amount(child(totals, 'cbc:TaxExclusiveAmount'))),
      ).toBe(true);
    }
  });

  it('the structure check itself catches order, missing, namespace and currency mistakes', () => {
    const good = readFileSync(join(EXPECTED, 'invoice.xml'), 'utf8');
    const broken = good
      .replace(/(\s*<cbc:ID>INV-2024-00417<\/cbc:ID>)(\s*<cbc:IssueDate>2024-01-31<\/cbc:IssueDate>)/, '$2$1')
      .replace('<cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>', '')
      .replace('<cbc:TaxAmount currencyID="EUR">26.41</cbc:TaxAmount>', '<cbc:TaxAmount>26.41</cbc:TaxAmount>')
      .replace('<cbc:Name>Hex nuts M8</cbc:Name>', '<Name>Hex nuts M8</Name>');
    const root = parseUbl(broken);
    expect(modelProblems(root, 'Invoice')).toEqual([
      'Invoice/cbc:ID is out of the schema order (after cbc:IssueDate)',
      'Invoice needs cbc:CustomizationID',
      'Invoice/cac:InvoiceLine[14]/cac:Item[4]/Name is not a child of cac:Item in UBL 2.1',
    ]);
    expect(() => checkUbl(broken)).toThrow();
    expect(() =>
      checkUbl(
        good.replace(
          '<cbc:TaxAmount currencyID="EUR">26.41</cbc:TaxAmount>\n    <cac:TaxSubtotal>',
          '<cbc:TaxAmount>26.41</cbc:TaxAmount>\n    <cac:TaxSubtotal>',
        ),
      ),
    ).toThrow(/does not carry currencyID/);
    expect(() =>
      checkUbl(
        good.replace(
          '<cbc:LineExtensionAmount currencyID="EUR">70.00<',
          '<cbc:LineExtensionAmount currencyID="EUR">70.01<',
        ),
      ),
    ).toThrow(/line net amounts sum/);
  });

  it('renders the fixtures to exactly the stored files, and the values read back', () => {
    for (const [name, file] of [
      ['export-invoice', 'invoice.xml'],
      ['export-tricky-characters', 'tricky-characters.xml'],
    ] as const) {
      const out = shipped.render(fixture(name)).bytes;
      expect(out.equals(readFileSync(join(EXPECTED, file)))).toBe(true);
    }
    const root = checkUbl(shipped.render(fixture('export-tricky-characters')).bytes.toString('utf8'));
    expect(child(root, 'cbc:ID')?.text).toBe('R&D/2024<01>');
    const seller = child(child(child(root, 'cac:AccountingSupplierParty'), 'cac:Party'), 'cac:PartyLegalEntity');
    expect(child(seller, 'cbc:RegistrationName')?.text).toBe('Šťastný "Quote" & <Tag> ; \'Semi\', Ltd. 🚀');
    const units = all(root, 'cac:InvoiceLine').map((line) => child(line, 'cbc:InvoicedQuantity')?.attributes.unitCode);
    expect(units).toEqual(['H87', 'KGM', 'HUR', 'MTK']);
  });

  it('refuses a document without line items, naming the element and the table', () => {
    let error: unknown;
    try {
      shipped.render(fixture('export-no-line-items'));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('MAPPING_NO_ROWS');
    expect((error as BridgeError).message).toContain('Invoice/cac:InvoiceLine needs at least one row of "line_items"');
  });

  it('a mapping that opts into a summary line writes one InvoiceLine carrying the net total', () => {
    const summary = variant((doc) => {
      const children = doc.getIn(['xml', 'root', 'children']) as YAMLSeq;
      const index = children.items.findIndex((item) => (item as YAMLMap).get('element') === 'cac:InvoiceLine');
      doc.setIn(['xml', 'root', 'children', index, 'no_rows'], 'omit');
      const currencyID = { currencyID: { var: 'currency' } };
      const net = { field: 'amount_total_base', required: true, number: { decimals: 2 } };
      children.items.splice(
        index + 1,
        0,
        doc.createNode({
          element: 'cac:InvoiceLine',
          when: { value: { count: 'lines' }, equals: 0 },
          children: [
            { element: 'cbc:ID', value: '1' },
            { element: 'cbc:InvoicedQuantity', attributes: { unitCode: 'C62' }, value: '1' },
            { element: 'cbc:LineExtensionAmount', attributes: currencyID, value: net },
            {
              element: 'cac:Item',
              children: [
                { element: 'cbc:Name', value: 'Invoice {document_id}' },
                {
                  element: 'cac:ClassifiedTaxCategory',
                  children: [
                    { element: 'cbc:ID', value: { var: 'header_tax_category' } },
                    { element: 'cac:TaxScheme', children: [{ element: 'cbc:ID', value: 'VAT' }] },
                  ],
                },
              ],
            },
            { element: 'cac:Price', children: [{ element: 'cbc:PriceAmount', attributes: currencyID, value: net }] },
          ],
        }),
      );
    });
    const header = {
      document_id: 'S-1',
      date_issue: { value: '2024-01-31', normalized: '2024-01-31' },
      currency: 'eur',
      sender_name: 'Seller',
      recipient_name: 'Buyer',
    };
    const money = (text: string) => ({ value: text, normalized: text });
    const root = checkUbl(
      summary
        .render(
          annotation({
            ...header,
            amount_total_base: money('100.00'),
            amount_total_tax: money('19.00'),
            amount_total: money('119.00'),
          }),
        )
        .bytes.toString('utf8'),
    );
    const lines = all(root, 'cac:InvoiceLine');
    expect(lines).toHaveLength(1);
    expect(child(lines[0], 'cbc:LineExtensionAmount')?.text).toBe('100.00');
    expect(child(child(child(lines[0], 'cac:Item'), 'cac:ClassifiedTaxCategory'), 'cbc:ID')?.text).toBe('S');
    expect(child(child(root, 'cac:LegalMonetaryTotal'), 'cbc:LineExtensionAmount')?.text).toBe('100.00');
    // With line items the summary line stays away and the real lines are written.
    expect(
      all(checkUbl(summary.render(fixture('export-invoice')).bytes.toString('utf8')), 'cac:InvoiceLine'),
    ).toHaveLength(3);
    expect(
      all(checkUbl(summary.render(fixture('export-no-line-items')).bytes.toString('utf8')), 'cac:InvoiceLine'),
    ).toHaveLength(1);
  });

  it('no_rows on an element without repeat is reported by check', () => {
    expect(() =>
      mappingFrom(
        'format: xml\nfile: { name: x.xml }\nxml:\n  root:\n    element: R\n    children:\n      - { element: A, no_rows: error }\n',
      ),
    ).toThrow(/:7:32: xml.root.children\[0\].no_rows: no_rows only applies to a repeated element/);
  });
});

describe('property: ubl-invoice amounts', () => {
  it('for any line items, the structure holds and the line net amounts sum to LegalMonetaryTotal/LineExtensionAmount', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            cents: fc.integer({ min: -9_999_999, max: 9_999_999 }),
            qty: fc.integer({ min: 1, max: 500 }),
            uom: fc.constantFrom('pcs', 'kg', 'h', ''),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        (rows) => {
          const net = rows
            .reduce((total, row) => total.plus(new Decimal(row.cents).dividedBy(100)), new Decimal(0))
            .toFixed(2);
          const view = annotation(
            {
              document_id: 'P-1',
              date_issue: { value: '2024-01-31', normalized: '2024-01-31' },
              currency: 'czk',
              sender_name: 'S',
              recipient_name: 'B',
              amount_total_base: { value: net, normalized: net },
              amount_total_tax: { value: '0', normalized: '0.00' },
              amount_total: { value: net, normalized: net },
            },
            rows.map((row, i) => ({
              item_code: `A${i}`,
              item_description: `Item ${i}`,
              item_quantity: String(row.qty),
              item_uom: row.uom,
              item_amount_total: (row.cents / 100).toFixed(2),
              item_rate: '0',
            })),
          );
          const root = checkUbl(shipped.render(view).bytes.toString('utf8'));
          expect(all(root, 'cac:InvoiceLine')).toHaveLength(rows.length);
          expect(child(child(root, 'cac:LegalMonetaryTotal'), 'cbc:LineExtensionAmount')?.text).toBe(net);
        },
      ),
      { numRuns: 40 },
    );
  });
});
